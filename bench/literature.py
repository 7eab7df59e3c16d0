"""Literature store benchmark: ``python bench/literature.py [--large]`` prints ONE JSON object.

Every figure comes with a baseline measured in the same run and the ratio between them:

- ``ingest``: chunks/s of ``LiteratureStore.ingest_documents`` (chunking, id check, embedding, Chroma
  upsert) on real chunks of the bundled abstracts against the store's embedding function alone on the
  same texts (ratio = what the store keeps of the embedding rate); beside it, the ONNX Runtime copy of
  MiniLM at the model's 256 tokens on the same texts (the engine that fills the embedding cache below).
- ``store``: a store of RECOMBINED REAL TEXT: sentences of real PubMed abstracts (the NCBI Disease Corpus
  and PubMedQA's contexts from ``--shared``; the 300 bundled abstracts alone without it) regrouped, seeded,
  into new passages of 40-120 words with a real title (see ``recombine``), so the vectors are the model's
  own vectors of realistic text, not random ones. 2,000 chunks by default, 100,000 with ``--large``
  (``make bench-large``). Their vectors are embedded once and cached (``embedding_cache``); the cache
  is checked against the store's embedding function on a sample in every run.
  * ``upsert``: chunks/s of storing the precomputed vectors, against the embedding rate of the same run;
  * ``recall_at_10``: Chroma's HNSW answers against exact search (numpy brute-force cosine over the same
    vectors) for real questions (the issue's questions and PubMedQA questions) and real held-out sentences
    (sentences removed from the pool before recombination);
  * latency p50/p95: the whole ``LiteratureStore.search`` (query embedding + Chroma + passages), the Chroma
    query alone, the query embedding alone, and exact search with numpy (the baseline);
  * ``ef_search``: recall and Chroma latency at the default and larger HNSW ``ef_search`` (a query-time
    setting, changed with ``collection.modify`` and measured on the store reopened).

The embedding cache lives under ``BIOMEDGPT_HOME/bench/literature`` (``--cache-dir``): one ``.npy`` per
block of 1,000 chunks, named by a hash of the block's texts and of the model, written atomically. Blocks
are a prefix of the same sequence, so the default run's 2,000 chunks are the first two blocks of the large
run, and an interrupted fill resumes. ``--prepare`` fills the cache and prints nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 4  # alternating embedding-only / ingest measurements
K = 10
BLOCK = 1_000  # chunks per cache file
MIN_WORDS, MAX_WORDS = 40, 120  # a passage's length: the store's default chunking packs up to 120 words
SEED = 0

QUESTIONS = [
    "Which mutations cause familial adenomatous polyposis?",
    "beta-catenin mutations in skin tumours",
    "BRCA1 germline alterations in ovarian cancer",
    "myotonic dystrophy CTG repeat expansion",
    "Huntington disease CAG repeat length and age of onset",
    "Duchenne muscular dystrophy dystrophin deletions",
    "cystic fibrosis CFTR mutation frequency",
    "hereditary nonpolyposis colorectal cancer mismatch repair genes",
    "von Hippel-Lindau disease tumour suppressor",
    "ataxia telangiectasia ATM gene",
    "Wilms tumour WT1 gene",
    "fragile X syndrome FMR1",
]


def log(message: str) -> None:
    print(f"[literature bench] {message}", file=sys.stderr, flush=True)


def _percentiles(samples: list[float]) -> dict:
    values = np.asarray(samples) * 1000.0
    return {"p50_ms": round(float(np.percentile(values, 50)), 3), "p95_ms": round(float(np.percentile(values, 95)), 3)}


# -- recombined real text ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    """One recombined chunk: what the store would hold (``text``) and embed (``embed_text``)."""

    id: str
    text: str
    embed_text: str
    metadata: dict


def recombine(abstracts: list[tuple[str | None, list[str]]], n: int, *, seed: int = SEED, holdout: int = 300,
              min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> tuple[list[Passage], list[str]]:
    """``n`` new passages made of the sentences of ``abstracts`` ((title, sentences) pairs), and the held-out
    sentences (``holdout`` sentences of 8-60 words, removed from the pool first: queries that no passage contains).

    Each passage takes runs of 1-3 consecutive sentences from randomly chosen abstracts until it reaches a
    random length between ``min_words`` and ``max_words`` words (never more than ``max_words``; a longer
    sentence is cut to ``max_words`` words, as the store's chunking wraps one), and the title of the abstract
    of its first run; a text that came up before is drawn again (no duplicates). Deterministic for a seed, and
    prefix-stable: the first ``m`` passages of any ``n >= m`` are the same, so a small run's embeddings are the
    first blocks of a large run's.
    """
    # deferred, like every project import here: the project's chunk ids (no NLTK needed)
    from biomedgpt.tools.chunking import chunk_id

    rng = random.Random(seed)
    candidates = [(a, s) for a, (_, sentences) in enumerate(abstracts) for s, sentence in enumerate(sentences)
                  if 8 <= len(sentence.split()) <= 60]
    held = rng.sample(candidates, min(holdout, len(candidates) // 10))
    held_set = set(held)
    pool: list[tuple[str | None, list[str]]] = []
    for a, (title, sentences) in enumerate(abstracts):
        kept = [" ".join(s.split()[:max_words]) for i, s in enumerate(sentences) if (a, i) not in held_set]
        if kept:
            pool.append((title, kept))
    if not pool:
        raise ValueError("recombine needs at least one abstract with sentences")

    passages: list[Passage] = []
    seen: set[str] = set()
    while len(passages) < n:
        target = rng.randint(min_words, max_words)
        parts: list[str] = []
        words = 0
        title = None
        full = False
        while not full and words < target:
            source_title, sentences = pool[rng.randrange(len(pool))]
            start = rng.randrange(len(sentences))
            for sentence in sentences[start:start + rng.randint(1, 3)]:
                count = len(sentence.split())
                if parts and words + count > max_words:
                    full = True
                    break
                if not parts:
                    title = source_title
                parts.append(sentence)
                words += count
        text = " ".join(parts)
        if text in seen:  # one run of long sentences can come up again: a store holds each passage once
            continue
        seen.add(text)
        source_id = f"recombined:{len(passages)}"
        metadata = {"chunk": 0, "source": "recombined", "source_id": source_id}
        if title:
            metadata["title"] = title
        passages.append(Passage(id=chunk_id(source_id, text), text=text,
                                embed_text=f"{title}. {text}" if title else text, metadata=metadata))
    sentences_out = [abstracts[a][1][s] for a, s in held]
    return passages, sentences_out


def real_abstracts(shared: Path) -> tuple[list[tuple[str | None, list[str]]], list[str], list[str]]:
    """((title, sentences) of every real abstract available, real questions, the names of the sources)."""
    from biomedgpt.core.datasets import read_pubmedqa
    from biomedgpt.tools.chunking import split_sentences
    from biomedgpt.tools.documents import IngestReport, read_jsonl
    from biomedgpt.tools.literature import BUNDLED_CORPUS

    texts: list[tuple[str | None, str]] = []
    sources = []
    ncbi = shared / "datasets" / "literature_ncbi_disease" / "corpus.jsonl"
    if ncbi.is_file():  # all 792 NCBI Disease Corpus abstracts (the bundled 300 are among them)
        docs = list(read_jsonl(ncbi, IngestReport()))
        sources.append(f"NCBI Disease Corpus ({len(docs)} abstracts, {ncbi})")
    else:
        docs = list(read_jsonl(BUNDLED_CORPUS, IngestReport()))
        sources.append(f"bundled NCBI Disease Corpus abstracts ({len(docs)})")
    texts.extend((d.title, d.text) for d in docs)
    questions = list(QUESTIONS)
    pubmedqa = shared / "datasets" / "pubmedqa" / "ori_pqal.json"
    if pubmedqa.is_file():
        records = [r for r in read_pubmedqa(pubmedqa) if r.context]
        texts.extend((None, r.context) for r in records)  # PubMedQA keeps no title
        questions += [r.question for r in random.Random(SEED).sample(records, len(records))]
        sources.append(f"PubMedQA PQA-L contexts and questions ({len(records)}, {pubmedqa})")
    abstracts = []
    for title, text in texts:
        sentences = split_sentences(text)
        if sentences:
            abstracts.append((title, sentences))
    return abstracts, questions, sources


# -- embeddings and their cache ------------------------------------------------------------------


class OnnxChunkEmbedder:
    """The ONNX Runtime copy of the shipped MiniLM (``tools/minilm_onnx``) at the model's own 256 tokens
    (sentence-transformers' ``max_seq_length``; the question path cuts at 128), length-sorted batches."""

    def __init__(self, settings, threads: int) -> None:
        import onnxruntime as ort  # deferred
        from biomedgpt.tools import minilm_onnx
        from biomedgpt.tools.embeddings import default_model_path
        from tokenizers import Tokenizer

        model_dir = default_model_path()
        self.max_tokens = int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
        minilm_onnx.embedder(settings)  # exports the graph into BIOMEDGPT_HOME once
        self.path = minilm_onnx.onnx_path(settings)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()  # tokenizer.json pads to 128; batches here are padded to their longest text
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    @property
    def stamp(self) -> str:
        from biomedgpt.tools.literature import default_model_version

        return f"{default_model_version()}|{self.path.name}|onnx|{self.max_tokens}"

    def __call__(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
        out = np.zeros((len(texts), 384), np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(encoded[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for r, i in enumerate(rows):
                ids[r, :len(encoded[i].ids)] = encoded[i].ids
                mask[r, :len(encoded[i].ids)] = 1
            out[rows] = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                                "token_type_ids": np.zeros_like(ids)})[0]
        return out


def cached_vectors(texts: list[str], embedder, cache_dir: Path, *, block: int = BLOCK) -> tuple[np.ndarray, dict]:
    """The vectors of ``texts`` (float32, one row each), embedded by ``embedder`` only for blocks not cached."""
    from biomedgpt.core.files import atomic_open, atomic_write_text

    out = np.zeros((len(texts), 384), np.float32)
    computed = embed_s = 0.0
    recorded_chunks = recorded_s = 0.0
    timed = 0
    files = []
    n_blocks = -(-len(texts) // block)
    for number in range(n_blocks):
        part = texts[number * block:(number + 1) * block]
        digest = hashlib.sha256(embedder.stamp.encode())
        for text in part:
            digest.update(text.encode("utf-8") + b"\x00")
        path = cache_dir / f"minilm-{digest.hexdigest()[:24]}.npy"
        vectors = None
        if path.is_file():
            try:
                vectors = np.load(path, allow_pickle=False)
                if vectors.shape != (len(part), 384):
                    vectors = None
            except (OSError, ValueError):
                vectors = None
        if vectors is None:
            start = time.perf_counter()
            vectors = embedder(part).astype(np.float32)
            seconds = time.perf_counter() - start
            with atomic_open(path) as handle:
                np.save(handle, vectors)
            atomic_write_text(path.with_suffix(".json"), json.dumps(
                {"chunks": len(part), "seconds": seconds, "threads": getattr(embedder, "threads", None),
                 "stamp": embedder.stamp, "when": time.strftime("%Y-%m-%d %H:%M:%S")}))
            computed += len(part)
            embed_s += seconds
            log(f"embedded block {number + 1}/{n_blocks}: {len(part) / seconds:.1f} chunks/s")
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            recorded_chunks += meta["chunks"]
            recorded_s += meta["seconds"]
            timed += 1
        except (OSError, ValueError, KeyError):
            pass
        out[number * block:number * block + len(part)] = vectors
        files.append(path.name)
    info = {
        "folder": str(cache_dir),
        "blocks": n_blocks,
        "block_chunks": block,
        "engine": embedder.stamp,
        "chunks_embedded_this_run": int(computed),
        "embed_chunks_per_s_this_run": round(computed / embed_s, 2) if computed else None,
        "embed_chunks_per_s_when_cached": round(recorded_chunks / recorded_s, 2) if recorded_s else None,
        "embed_seconds_when_cached": round(recorded_s, 1),
        "blocks_timed_when_cached": timed,
    }
    return out, info


# -- measurements ------------------------------------------------------------------------------------


def bench_ingest(settings, n_chunks: int, onnx) -> dict:
    """Embedding-only vs. full ingest on the same chunks of the bundled corpus (real text, really embedded)."""
    from biomedgpt.tools.chunking import chunk_document
    from biomedgpt.tools.documents import IngestReport, read_jsonl
    from biomedgpt.tools.literature import BUNDLED_CORPUS, LiteratureStore

    docs = list(read_jsonl(BUNDLED_CORPUS, IngestReport()))
    chosen, count = [], 0
    for doc in docs:
        if count >= n_chunks:
            break
        chosen.append(doc)
        count += len(chunk_document(doc))
    texts = [c.embed_text for d in chosen for c in chunk_document(d)]

    store = LiteratureStore(settings, collection="bench_ingest", bundled=False)
    store.count()  # open the store and load the model before any clock starts
    function = store._function
    function(texts[:8])  # warm-up
    onnx(texts[:8])

    # Interleave the three so that load changes on a shared machine hit all alike.
    embed_s = ingest_s = onnx_s = 0.0
    added = 0
    for part in range(ROUNDS):
        docs = chosen[part::ROUNDS]
        part_texts = [c.embed_text for d in docs for c in chunk_document(d)]
        start = time.perf_counter()
        for i in range(0, len(part_texts), 64):
            function(part_texts[i:i + 64])
        embed_s += time.perf_counter() - start
        start = time.perf_counter()
        onnx(part_texts)
        onnx_s += time.perf_counter() - start
        start = time.perf_counter()
        report = store.ingest_documents(docs, batch_size=64)
        ingest_s += time.perf_counter() - start
        added += report.chunks_added
    assert added == len({c.id for d in chosen for c in chunk_document(d)})

    embed_rate = len(texts) / embed_s
    ingest_rate = added / ingest_s
    onnx_rate = len(texts) / onnx_s
    return {
        "chunks": added,
        "rounds": ROUNDS,
        "method": f"embedding-only, ONNX embedding and ingest timed alternately over {ROUNDS} disjoint parts",
        "documents": len(chosen),
        "source": "bundled NCBI Disease Corpus abstracts (real text)",
        "embedding_only_chunks_per_s": round(embed_rate, 2),
        "ingest_chunks_per_s": round(ingest_rate, 2),
        "ingest_over_embedding_ratio": round(ingest_rate / embed_rate, 3),
        "store_overhead_fraction": round(1 - ingest_rate / embed_rate, 3),
        "onnx_256_chunks_per_s": round(onnx_rate, 2),
        "onnx_256_threads": onnx.threads,
        "onnx_over_store_embedding_ratio": round(onnx_rate / embed_rate, 3),
    }


@contextmanager
def _one_blas_thread():
    """numpy's BLAS on one thread inside (threadpoolctl, when installed); yields the thread count used."""
    try:
        # deferred: optional (installed with scikit-learn)
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield os.environ.get("OMP_NUM_THREADS", "BLAS default")
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield 1


def _exact_top(matrix: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = matrix @ query
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def bench_store(settings, passages: list[Passage], vectors: np.ndarray, queries: list[tuple[str, str]],
                embedding_rate: float, ef_values: list[int]) -> dict:
    """Fill a store with ``passages`` and their cached ``vectors``; recall@10 and latency against exact search."""
    from biomedgpt.tools.literature import LiteratureStore

    store = LiteratureStore(settings, collection="bench_recombined", bundled=False)
    collection = store.collection
    function = store._function
    batch = min(500, store._client.get_max_batch_size())
    index = {p.id: i for i, p in enumerate(passages)}
    assert len(index) == len(passages), "recombined chunk ids must be unique"

    # -- upsert the precomputed vectors, as ``ensure_bundled`` stores the shipped ones
    marks = []
    start = time.perf_counter()
    for first in range(0, len(passages), batch):
        part = passages[first:first + batch]
        collection.upsert(ids=[p.id for p in part], embeddings=vectors[first:first + len(part)],
                          documents=[p.text for p in part], metadatas=[p.metadata for p in part])
        marks.append((first + len(part), time.perf_counter()))
    upsert_s = time.perf_counter() - start
    assert store.count() == len(passages)
    upsert_rate = len(passages) / upsert_s
    tenths = None
    if len(marks) >= 20:  # the rate as the index grows: chunks/s over each tenth of the fill
        tenth = len(passages) // 10
        ends = [start] + [next(t for n, t in marks if n >= tenth * (d + 1)) for d in range(9)] + [marks[-1][1]]
        tenths = [round((tenth if d < 9 else len(passages) - 9 * tenth) / (ends[d + 1] - ends[d]), 1)
                  for d in range(10)]
    try:
        configuration = collection.configuration_json
    except AttributeError:
        configuration = None

    # -- queries: vectors by the store's own function; exact search over the same (unit-length) vectors
    matrix = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [text for _, text in queries]
    query_vectors = np.asarray(function(texts), dtype=np.float32)
    for text in texts[:5]:  # warm-up: the HNSW index loads, the ONNX session runs once
        store.search(text, k=K)
    full, chroma_only, embed_only, exact, counts = [], [], [], [], []
    recalls = {"question": [], "held-out sentence": []}
    with _one_blas_thread() as blas_threads:  # exact search on one core, like one HNSW query
        for (kind, text), vector in zip(queries, query_vectors):
            t0 = time.perf_counter()
            store.search(text, k=K)
            t1 = time.perf_counter()
            result = collection.query(query_embeddings=[vector], n_results=K,
                                      include=["documents", "metadatas", "distances"])
            t2 = time.perf_counter()
            function([text])
            t3 = time.perf_counter()
            truth = _exact_top(matrix, vector, K)
            t4 = time.perf_counter()
            store.count()  # search counts the store before every query
            t5 = time.perf_counter()
            full.append(t1 - t0)
            chroma_only.append(t2 - t1)
            embed_only.append(t3 - t2)
            exact.append(t4 - t3)
            counts.append(t5 - t4)
            found = {index[i] for i in result["ids"][0]}
            recalls[kind].append(len(found & set(truth.tolist())) / K)
    every = recalls["question"] + recalls["held-out sentence"]

    # ef_search, a query-time setting: ``modify`` stores it, but an index already open keeps the old value, so each
    # value is measured on the store reopened (a new client, as a new process would open it). The default is
    # measured again the same way, so these rows compare with one another.
    import chromadb  # deferred, like every heavy import here
    from biomedgpt.tools.literature import _chroma_settings
    from chromadb.api.client import SharedSystemClient

    default_ef = (configuration.get("hnsw") or {}).get("ef_search", 100) if isinstance(configuration, dict) else 100
    sweep = {}
    for ef in [default_ef] + [e for e in ef_values if e != default_ef]:
        collection.modify(configuration={"hnsw": {"ef_search": ef}})
        SharedSystemClient.clear_system_cache()
        client = chromadb.PersistentClient(path=str(settings.home / "chroma"), settings=_chroma_settings())
        collection = client.get_collection(store.collection_name, embedding_function=function)
        hits, times = [], []
        for vector in query_vectors[:5]:  # warm-up: the index loads
            collection.query(query_embeddings=[vector], n_results=K, include=["distances"])
        for vector in query_vectors:
            start = time.perf_counter()
            result = collection.query(query_embeddings=[vector], n_results=K, include=["distances"])
            times.append(time.perf_counter() - start)
            truth = set(_exact_top(matrix, vector, K).tolist())
            hits.append(len({index[i] for i in result["ids"][0]} & truth) / K)
        sweep[str(ef)] = {"recall_at_10": round(float(np.mean(hits)), 4),
                          "queries_with_all_10": round(float(np.mean(np.asarray(hits) == 1.0)), 4),
                          "chroma_query": _percentiles(times)}
        if ef == default_ef:
            sweep[str(ef)]["default"] = True

    search, chroma, embed, brute = (_percentiles(x) for x in (full, chroma_only, embed_only, exact))
    count_p50 = float(np.percentile(counts, 50)) * 1000
    return {
        "chunks": len(passages),
        "hnsw_configuration": (configuration or {}).get("hnsw") if isinstance(configuration, dict) else configuration,
        "upsert": {
            "chunks_per_s": round(upsert_rate, 1),
            "batch": batch,
            "seconds": round(upsert_s, 1),
            "chunks_per_s_by_tenth_of_fill": tenths,
            "baseline_embedding_chunks_per_s": round(embedding_rate, 2),
            "upsert_over_embedding_ratio": round(upsert_rate / embedding_rate, 1),
        },
        "recall_at_10": {
            "mean": round(float(np.mean(every)), 4),
            "questions": round(float(np.mean(recalls["question"])), 4) if recalls["question"] else None,
            "held_out_sentences": (round(float(np.mean(recalls["held-out sentence"])), 4)
                                   if recalls["held-out sentence"] else None),
            "queries_with_all_10": round(float(np.mean(np.asarray(every) == 1.0)), 4),
            "min": round(float(np.min(every)), 2),
            "baseline": "exact search (numpy brute-force cosine over the same vectors) = 1.0; ratio = the mean",
        },
        "queries": {"total": len(queries), "questions": len(recalls["question"]),
                    "held_out_sentences": len(recalls["held-out sentence"]), "k": K},
        "latency": {
            "search": search,
            "chroma_query": chroma,
            "query_embedding": embed,
            "exact_numpy": brute,
            "exact_numpy_threads": blas_threads,
            "store_count": _percentiles(counts),
            "exact_over_chroma_p50_ratio": round(brute["p50_ms"] / chroma["p50_ms"], 2),
            "search_over_embedding_plus_chroma_p50_ratio": round(
                search["p50_ms"] / (embed["p50_ms"] + chroma["p50_ms"]), 2),
            "search_over_embedding_plus_chroma_plus_count_p50_ratio": round(
                search["p50_ms"] / (embed["p50_ms"] + chroma["p50_ms"] + count_p50), 2),
        },
        "ef_search": sweep,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="100,000 recombined chunks (make bench-large)")
    parser.add_argument("--quick", action="store_true", help="the default run (kept for older scripts)")
    parser.add_argument("--chunks", type=int, default=None, help="recombined chunks stored (default 2,000; --large 100,000)")
    parser.add_argument("--queries", type=int, default=None, help="queries, half questions and half held-out "
                        "sentences (default 200; --large 400)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared data folder")
    parser.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (BIOMEDGPT_HOME/bench/literature)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads for the embedding cache "
                        "(default OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--prepare", action="store_true", help="fill the embedding cache only")
    args = parser.parse_args(argv)

    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import torch
    from biomedgpt.core.settings import Settings, get_settings, resolve_device
    from biomedgpt.tools import minilm_onnx
    from biomedgpt.tools.embeddings import default_model_path, resolve_model_path

    home_settings = get_settings()
    if resolve_model_path(home_settings) != default_model_path():
        raise SystemExit("bench/literature.py measures the shipped all-MiniLM-L6-v2; unset BIOMEDGPT_EMBEDDING_MODEL")
    n_chunks = args.chunks or (100_000 if args.large else 2_000)
    n_queries = args.queries or (400 if args.large else 200)
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    cache_dir = args.cache_dir or home_settings.home.expanduser() / "bench" / "literature"

    started = time.perf_counter()
    abstracts, questions, sources = real_abstracts(args.shared)
    passages, held_out = recombine(abstracts, n_chunks)
    onnx = OnnxChunkEmbedder(home_settings, threads)
    vectors, cache = cached_vectors([p.embed_text for p in passages], onnx, cache_dir)
    if args.prepare:
        log(f"cache ready: {json.dumps(cache)}")
        return cache
    half = n_queries // 2
    queries = ([("question", q) for q in questions[:half]]
               + [("held-out sentence", s) for s in held_out[:n_queries - min(half, len(questions))]])

    with tempfile.TemporaryDirectory(prefix="biomedgpt-bench-") as tmp:
        settings = Settings(home=Path(tmp), chroma_url=None)
        # the ONNX graph of the questions' path, from the real home (else every run would export it anew)
        link = minilm_onnx.onnx_path(settings)
        link.symlink_to(minilm_onnx.onnx_path(home_settings))
        ingest = bench_ingest(settings, 256 if args.large else 128, onnx)
        # the cache against the store's own function, on a sample of this run's chunks
        from biomedgpt.tools.embeddings import embedding_function

        sample = list(range(0, len(passages), max(1, len(passages) // 32)))[:32]
        reference = np.asarray(embedding_function(settings)([passages[i].embed_text for i in sample]), np.float32)
        cache["check_max_abs_diff_vs_store_function"] = float(np.abs(reference - vectors[sample]).max())
        cache["check_min_cosine_vs_store_function"] = round(float((reference * vectors[sample]).sum(1).min()), 7)
        cache["check_chunks"] = len(sample)
        store = bench_store(settings, passages, vectors, queries, ingest["embedding_only_chunks_per_s"],
                            [100, 200, 400] if args.large else [100, 200])
        total = time.perf_counter() - started
    words = [len(p.text.split()) for p in passages]
    result = {
        "benchmark": "literature",
        "large": args.large,
        "model": str(resolve_model_path(home_settings)),
        "device": resolve_device(home_settings),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "backend": "chromadb PersistentClient (embedded), hnsw cosine",
        "ingest": ingest,
        "corpus": {
            "kind": "recombined real text: sentences of real abstracts regrouped into new passages (seeded)",
            "sources": sources,
            "abstracts": len(abstracts),
            "sentences": sum(len(s) for _, s in abstracts),
            "held_out_sentences": len(held_out),
            "chunks": len(passages),
            "words_per_chunk_mean": round(float(np.mean(words)), 1),
            "duplicate_texts": len(passages) - len({p.text for p in passages}),
            "seed": SEED,
        },
        "embedding_cache": cache,
        "store": store,
        "total_seconds": round(total, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
