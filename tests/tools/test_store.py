"""The literature store: formats, search, idempotence, resume after an interruption or a kill, the bundled
corpus, no ONNX download, corrupt stores, and PubMed fetching from a loopback E-utilities server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from biomedgpt.core.errors import InputError
from biomedgpt.tools.chunking import ChunkConfig, chunk_document, chunk_id, split_sentences
from biomedgpt.tools.documents import Document, IngestReport, expand_paths, iter_documents, read_jsonl
from biomedgpt.tools.errors import StoreError
from biomedgpt.tools.literature import LiteratureStore

DATA = Path(__file__).resolve().parents[1] / "data" / "literature"
CORPUS_FILES = ["corpus.jsonl", "records.medline", "article.xml", "notes.md", "crispr.txt"]


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("BIOMEDGPT_HOME", str(path))
    return path


@pytest.fixture()
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in CORPUS_FILES:
        shutil.copy(DATA / name, folder / name)
    return folder


def _all_chunk_ids(folder: Path, config: ChunkConfig = ChunkConfig()) -> set[str]:
    report = IngestReport()
    return {c.id for p in expand_paths([folder]) for d in iter_documents(p, report) for c in chunk_document(d, config)}


def _stored_ids(store: LiteratureStore) -> list[str]:
    return store.collection.get(include=[])["ids"]


# ------------------------------------------------------------------------------------ chunking


def test_sentence_splitter_knows_biomedical_abbreviations():
    text = "Mutations (e.g. in exon 15) cause FAP. Smith et al. reported 3.5 mg/kg. Is it dose-dependent? Yes."
    assert split_sentences(text) == ["Mutations (e.g. in exon 15) cause FAP.", "Smith et al. reported 3.5 mg/kg.",
                                     "Is it dose-dependent?", "Yes."]
    assert split_sentences("Heading\n\nbody text here") == ["Heading", "body text here"]


def test_chunks_overlap_and_ids_are_content_hashes():
    sentences = [f"Sentence number {i} talks about gene G{i} and its role in disease D{i}." for i in range(12)]
    doc = Document(text=" ".join(sentences), source_id="pmid:42", source="x", pmid="42", title="T")
    chunks = chunk_document(doc, ChunkConfig(max_words=40, overlap_sentences=1))
    assert len(chunks) > 2
    for before, after in zip(chunks, chunks[1:]):
        last_sentence = split_sentences(before.text)[-1]
        assert after.text.startswith(last_sentence)  # one sentence of overlap
    joined = " ".join(chunks[0].text.split())
    assert sentences[0] in joined and all(any(s in c.text for c in chunks) for s in sentences)  # nothing lost
    assert [c.metadata["chunk"] for c in chunks] == list(range(len(chunks)))
    assert chunks[0].id == chunk_id("pmid:42", "  " + chunks[0].text.replace(" ", "\n", 1))  # whitespace-normalised
    assert chunks[0].id != chunk_id("pmid:43", chunks[0].text)  # the source is part of the id
    again = chunk_document(doc, ChunkConfig(max_words=40, overlap_sentences=1))
    assert [c.id for c in again] == [c.id for c in chunks]
    # a run-on sentence longer than max_words is wrapped, not dropped
    long = Document(text=" ".join(["word"] * 95) + ".", source_id="file:x", source="x")
    pieces = chunk_document(long, ChunkConfig(max_words=40, overlap_sentences=0))
    assert sum(len(c.text.split()) for c in pieces) == 95


# ---------------------------------------------------------------------------- ingest and search


def test_ingest_all_formats_then_search(home, corpus):
    store = LiteratureStore(bundled=False)
    report = store.ingest([corpus], batch_size=3, progress=False)
    assert report.files == 5
    assert report.records == 7  # 2 JSONL + 2 MEDLINE + 1 XML + 1 Markdown + 1 text
    assert report.skipped_rows == 2 and any("corpus.jsonl:3" in p for p in report.problems)
    assert any("'abc' is not a number" in p for p in report.problems)
    expected = _all_chunk_ids(corpus)
    assert report.chunks_added == len(expected) and report.chunks_skipped == 0
    assert sorted(_stored_ids(store)) == sorted(expected)

    def top(query: str):
        hits = store.search(query, k=3)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(0 < h.score <= 1.0001 for h in hits)
        return hits[0]

    hit = top("amyloid plaques in Alzheimer's disease")
    assert (hit.pmid, hit.year, hit.title) == ("3001", 2015, "Amyloid-beta plaques in Alzheimer disease.")
    assert "BACKGROUND: Amyloid-beta" in hit.text and "RESULTS:" in hit.text
    hit = top("metformin and hepatic glucose production")
    assert (hit.pmid, hit.year) == ("2001", 2010)
    hit = top("thromboxane synthesis in platelets")
    assert (hit.pmid, hit.year, hit.chunk) == ("1001", 2001, 0)
    hit = top("kelch13 artemisinin resistance malaria")
    assert hit.pmid is None and hit.title == "Malaria notes"
    assert "*" not in hit.text and "https://" not in hit.text  # Markdown markup removed
    assert top("guide RNA genome editing").title == "crispr"
    assert store.search("BRCA1 homologous recombination", k=1)[0].pmid == "1002"


def test_reingest_adds_nothing(home, corpus):
    store = LiteratureStore(bundled=False)
    first = store.ingest([corpus], progress=False)
    second = LiteratureStore(bundled=False).ingest([corpus], progress=False)
    assert second.chunks_added == 0 and second.chunks_skipped == first.chunks_added
    assert store.count() == first.chunks_added


def test_interrupted_ingest_resumes_without_duplicates_or_losses(home, corpus):
    expected = _all_chunk_ids(corpus)

    def stop_after_first_batch(report: IngestReport) -> None:
        raise KeyboardInterrupt("simulated Ctrl-C after the first batch")

    store = LiteratureStore(bundled=False)
    with pytest.raises(KeyboardInterrupt):
        store.ingest([corpus], batch_size=2, progress=False, on_batch=stop_after_first_batch)
    assert store.count() == 2
    resumed = LiteratureStore(bundled=False).ingest([corpus], batch_size=2, progress=False)
    assert resumed.chunks_added == len(expected) - 2 and resumed.chunks_skipped == 2
    ids = _stored_ids(LiteratureStore(bundled=False))
    assert len(ids) == len(set(ids)) and set(ids) == expected


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from biomedgpt.tools.literature import LiteratureStore

    def kill_after_two_batches(report):
        if report.chunks_added >= 4:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a real crash

    LiteratureStore(bundled=False).ingest([sys.argv[1]], batch_size=2, progress=False,
                                          on_batch=kill_after_two_batches)
    print("not killed")
""")


@pytest.mark.slow
def test_killed_ingest_resumes(home, corpus):
    env = {**os.environ, "BIOMEDGPT_HOME": str(home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(corpus)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    expected = _all_chunk_ids(corpus)
    store = LiteratureStore(bundled=False)
    survived = store.count()
    assert 4 <= survived < len(expected)
    report = store.ingest([corpus], batch_size=2, progress=False)
    assert report.chunks_added == len(expected) - survived and report.chunks_skipped == survived
    ids = _stored_ids(store)
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert store.search("sickle cell hydroxyurea", k=1)[0].pmid == "2002"


# ---------------------------------------------------------------------- bundled corpus, no onnx


def _onnx_state() -> dict:
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    state = {}
    for folder in {Path("~/.cache/chroma/onnx_models").expanduser(), Path(ONNXMiniLM_L6_V2.DOWNLOAD_PATH).parent}:
        state[str(folder)] = sorted(str(p) for p in folder.rglob("*")) if folder.exists() else None
    return state


def test_bundled_corpus_on_first_search_and_no_onnx_download(home):
    from biomedgpt.tools.embeddings import default_model_path

    before = _onnx_state()
    store = LiteratureStore()
    assert store.count() == 0
    hits = store.search("skin tumour caused by beta-catenin mutations", k=3)
    assert hits[0].pmid == "10192393"
    bundled_chunks = store.count()
    assert bundled_chunks > 600  # 300 abstracts
    # the embedding function is the packaged MiniLM, never Chroma's default
    assert store._function.model_name == str(default_model_path())
    assert store._function.name() == "sentence_transformer"  # Chroma's, computed through ONNX for short texts
    # a second store (a new process would do the same) finds everything present and adds nothing
    again = LiteratureStore().ensure_bundled()
    assert again.chunks_added == 0 and again.chunks_skipped == bundled_chunks
    assert _onnx_state() == before


def test_bundled_vectors_match_the_live_model(home):
    """The shipped vectors must be what the packaged model computes now (else search quality drifts)."""
    import numpy as np

    store = LiteratureStore(bundled=False)
    store.count()  # opens the store and loads the embedding function
    vectors = store._bundled_vectors()
    assert len(vectors) > 600
    report = IngestReport()
    from biomedgpt.tools.literature import BUNDLED_CORPUS

    doc = next(read_jsonl(BUNDLED_CORPUS, report))
    chunk = chunk_document(doc)[0]
    live = np.asarray(store._function([chunk.embed_text])[0])
    assert float(np.dot(live, vectors[chunk.id])) > 0.999


# ---------------------------------------------------------------------------------- bad input


def test_clear_errors_for_bad_input(home, tmp_path):
    store = LiteratureStore(bundled=False)
    with pytest.raises(InputError, match="no_such_file.jsonl: no such file"):
        store.ingest([tmp_path / "no_such_file.jsonl"])
    odd = tmp_path / "table.csv"
    odd.write_text("a,b\n")
    with pytest.raises(InputError, match="unknown file type '.csv'"):
        store.ingest([odd])
    broken = tmp_path / "broken.xml"
    broken.write_text("<PubmedArticleSet><PubmedArticle>")
    with pytest.raises(InputError, match="broken.xml is not PubMed XML"):
        store.ingest([broken])
    with pytest.raises(InputError, match="non-empty query"):
        store.search("  ")
    with pytest.raises(InputError, match="k must be"):
        store.search("x", k=0)
    with pytest.raises(InputError, match="batch_size"):
        store.ingest([DATA / "crispr.txt"], batch_size=0)
    with pytest.raises(InputError, match="unknown chunking preset"):
        LiteratureStore(chunking="huge")
    with pytest.raises(InputError, match="collection name 'a b' is not valid"):
        LiteratureStore(collection="a b")


def test_corrupt_store_is_a_store_error_naming_the_folder(home):
    folder = home / "chroma"
    folder.mkdir(parents=True)
    (folder / "chroma.sqlite3").write_bytes(os.urandom(8192))
    with pytest.raises(StoreError) as caught:
        LiteratureStore(bundled=False).count()
    message = str(caught.value)
    assert str(folder) in message and "Move the folder aside" in message


def test_chroma_url_unreachable_is_a_store_error(home, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("BIOMEDGPT_CHROMA_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}.*BIOMEDGPT_CHROMA_URL"):
        LiteratureStore(bundled=False).count()


# ------------------------------------------------------------------------------ PubMed fetch


def test_pubmed_fetch_ingests_from_eutils(home, httpserver, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_EUTILS_URL", httpserver.url_for("/eutils"))
    monkeypatch.setenv("BIOMEDGPT_HTTP__MAX_RETRIES", "0")
    httpserver.expect_request("/eutils/esearch.fcgi").respond_with_data(
        (DATA / "esearch_pubmed.synthetic.json").read_bytes(), content_type="application/json")
    httpserver.expect_request("/eutils/efetch.fcgi").respond_with_data(
        (DATA / "efetch_pubmed_medline.synthetic.txt").read_bytes(), content_type="text/plain")
    store = LiteratureStore(bundled=False)
    report = store.pubmed_fetch("malaria artemisinin", n=2)
    assert report.records == 2 and report.chunks_added >= 2 and report.skipped_rows == 0
    requests = [entry[0] for entry in httpserver.log]
    assert [r.path for r in requests] == ["/eutils/esearch.fcgi", "/eutils/efetch.fcgi"]
    assert "malaria artemisinin" in requests[0].get_data(as_text=True).replace("+", " ")
    hit = store.search("artemisinin partner drug resistance in Cambodia", k=1)[0]
    assert (hit.pmid, hit.year) == ("90000001", 2021)
    again = store.pubmed_fetch("malaria artemisinin", n=2)
    assert again.chunks_added == 0 and again.chunks_skipped == report.chunks_added


def test_json_documents_lists_and_gzip(tmp_path):
    import gzip

    rows = [{"pmid": 5, "title": "One", "abstract": "First abstract.", "year": "1999 Spring"},
            {"pmid": "6", "title": "Two", "text": "Second abstract.", "journal": "J"}]
    listed = tmp_path / "records.json"
    listed.write_text(json.dumps(rows, indent=2))
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"header": {"type": "esearch"}}, indent=2))
    packed = tmp_path / "more.jsonl.gz"
    packed.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    report = IngestReport()
    docs = [d for p in expand_paths([tmp_path]) for d in iter_documents(p, report)]
    assert [(d.pmid, d.year, d.journal) for d in docs] == [("5", 1999, None), ("6", None, "J")] * 2
    assert report.skipped_rows == 1 and "one.json:1: no title and no abstract" in report.problems[0]


def test_an_empty_store_answers_with_no_passages(home):
    store = LiteratureStore(bundled=False)  # search asks Chroma directly, without counting the store first
    assert store.search("BRCA1 breast cancer", k=5) == [] and store.search("BRCA1", k=3, pmid="123") == []
