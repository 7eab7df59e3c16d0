"""Literature store benchmark: ``python bench/literature.py [--quick]`` prints ONE JSON object.

What it measures, in one run on the same machine:
- ``ingest``: chunks/s of ``LiteratureStore.ingest_documents`` (chunking, id check, embedding, Chroma
  upsert) against chunks/s of the embedding function alone on the same texts; the ratio is the store's
  overhead (1.0 = the store costs nothing beyond embedding).
- ``query``: search latency p50/p95 with 10,000 and 100,000 chunks stored (``--quick``: 2,000 and
  10,000). The filler chunks are SYNTHETIC: random word sequences drawn from the bundled abstracts,
  stored with precomputed random unit-length 384-d vectors (embedding 100,000 real chunks on a CPU
  would take hours). Queries are real questions embedded by the model; ``search_*`` times the whole
  ``LiteratureStore.search`` (query embedding + Chroma), ``chroma_*`` the Chroma query alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROUNDS = 4  # alternating embedding-only / ingest measurements

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


def _percentiles(samples: list[float]) -> dict:
    values = np.asarray(samples) * 1000.0
    return {"p50_ms": round(float(np.percentile(values, 50)), 2), "p95_ms": round(float(np.percentile(values, 95)), 2)}


def bench_ingest(settings, n_chunks: int) -> dict:
    """Embedding-only vs. full ingest on the same chunks of the bundled corpus."""
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

    # Interleave embedding-only and ingest rounds so that load changes on a shared machine hit both alike.
    embed_s = ingest_s = 0.0
    added = 0
    for part in range(ROUNDS):
        docs = chosen[part::ROUNDS]
        part_texts = [c.embed_text for d in docs for c in chunk_document(d)]
        start = time.perf_counter()
        for i in range(0, len(part_texts), 64):
            function(part_texts[i:i + 64])
        embed_s += time.perf_counter() - start
        start = time.perf_counter()
        report = store.ingest_documents(docs, batch_size=64)
        ingest_s += time.perf_counter() - start
        added += report.chunks_added
    assert added == len(set(c.id for d in chosen for c in chunk_document(d)))

    embed_rate = len(texts) / embed_s
    ingest_rate = added / ingest_s
    return {
        "chunks": added,
        "rounds": ROUNDS,
        "method": f"embedding-only and ingest timed alternately over {ROUNDS} disjoint parts of the same chunks",
        "documents": len(chosen),
        "source": "bundled NCBI Disease Corpus abstracts (real text)",
        "embedding_only_chunks_per_s": round(embed_rate, 2),
        "ingest_chunks_per_s": round(ingest_rate, 2),
        "ingest_over_embedding_ratio": round(ingest_rate / embed_rate, 3),
        "store_overhead_fraction": round(1 - ingest_rate / embed_rate, 3),
    }


def bench_query(settings, sizes: list[int], n_queries: int, seed: int = 0) -> dict:
    from biomedgpt.tools.documents import IngestReport, read_jsonl
    from biomedgpt.tools.literature import BUNDLED_CORPUS, LiteratureStore

    rng = np.random.default_rng(seed)
    words = " ".join(d.text for d in read_jsonl(BUNDLED_CORPUS, IngestReport())).split()
    store = LiteratureStore(settings, collection="bench_query", bundled=False)
    collection = store.collection
    function = store._function
    dim = len(function(["probe"])[0])
    max_batch = min(5000, store._client.get_max_batch_size())
    query_vectors = function(QUESTIONS)

    results = {}
    stored = 0
    for size in sorted(sizes):
        fill_start = time.perf_counter()
        while stored < size:
            n = min(max_batch, size - stored)
            vectors = rng.standard_normal((n, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            starts = rng.integers(0, len(words) - 120, size=n)
            lengths = rng.integers(40, 120, size=n)
            docs = [" ".join(words[s:s + length]) for s, length in zip(starts, lengths)]
            ids = [f"synthetic-{stored + i}" for i in range(n)]
            metas = [{"chunk": 0, "source": "synthetic", "source_id": "synthetic", "title": "synthetic filler"}] * n
            collection.upsert(ids=ids, embeddings=vectors, documents=docs, metadatas=metas)
            stored += n
        fill_s = time.perf_counter() - fill_start
        assert store.count() == size

        store.search(QUESTIONS[0], k=5)  # warm-up (index load)
        full, chroma_only = [], []
        for i in range(n_queries):
            question = QUESTIONS[i % len(QUESTIONS)]
            start = time.perf_counter()
            store.search(question, k=5)
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            collection.query(query_embeddings=[query_vectors[i % len(QUESTIONS)]], n_results=5,
                             include=["documents", "metadatas", "distances"])
            chroma_only.append(time.perf_counter() - start)
        results[str(size)] = {
            "search": _percentiles(full),
            "chroma_query": _percentiles(chroma_only),
            "queries": n_queries,
            "k": 5,
            "fill_seconds": round(fill_s, 1),
        }
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run: 128 (not 256) ingest chunks; 2,000 and 10,000 (not 10,000 and 100,000) stored")
    parser.add_argument("--queries", type=int, default=None, help="queries per store size (default 50; quick 20)")
    args = parser.parse_args(argv)

    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import torch

    from biomedgpt.core.settings import Settings, resolve_device
    from biomedgpt.tools.embeddings import resolve_model_path

    sizes = [2_000, 10_000] if args.quick else [10_000, 100_000]
    n_queries = args.queries or (20 if args.quick else 50)
    with tempfile.TemporaryDirectory(prefix="biomedgpt-bench-") as tmp:
        settings = Settings(home=Path(tmp), chroma_url=None)
        started = time.perf_counter()
        ingest = bench_ingest(settings, 128 if args.quick else 256)
        query = bench_query(settings, sizes, n_queries)
        total = time.perf_counter() - started
    result = {
        "benchmark": "literature",
        "quick": args.quick,
        "model": str(resolve_model_path(settings)),
        "device": resolve_device(settings),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "backend": "chromadb PersistentClient (embedded), hnsw cosine",
        "ingest": ingest,
        "query_latency": query,
        "query_filler": ("synthetic: the stored chunks are random word windows from the bundled abstracts "
                         "with precomputed random unit-norm embeddings (not model embeddings); the queries are "
                         "real questions embedded by the model. The ingest section uses real text, really "
                         "embedded."),
        "total_seconds": round(total, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
