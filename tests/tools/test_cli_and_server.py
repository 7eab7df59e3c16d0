"""``biomedgpt ingest`` / ``biomedgpt search`` and the Chroma server path (a real ``chroma run`` on 127.0.0.1)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biomedgpt.cli import app

DATA = Path(__file__).resolve().parents[1] / "data" / "literature"


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("BIOMEDGPT_HOME", str(path))
    return path


def test_cli_ingest_then_search_json(home, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(DATA / "records.medline"), str(DATA / "notes.md"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files"] == 2 and report["records"] == 3 and report["chunks_added"] >= 3

    again = runner.invoke(app, ["ingest", str(DATA / "records.medline"), str(DATA / "notes.md")])
    assert again.exit_code == 0 and "0 new chunk(s)" in again.stdout

    result = runner.invoke(app, ["search", "hydroxyurea in sickle cell disease", "--k", "2", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"] == "hydroxyurea in sickle cell disease"
    assert len(payload["results"]) == 2
    assert set(payload["results"][0]) == {"text", "pmid", "title", "year", "chunk", "score", "source"}
    assert payload["results"][0]["pmid"] == "2002" and payload["results"][0]["year"] == 2012

    table = runner.invoke(app, ["search", "beta-catenin skin tumour"])  # the bundled corpus is there too
    assert table.exit_code == 0 and "PMID 10192393" in table.stdout


def test_cli_errors_are_one_line(home, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.jsonl: no such file" in lines[0] and "Traceback" not in result.output
    result = runner.invoke(app, ["search", "x", "--k", "0"])
    assert result.exit_code != 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def chroma_server(tmp_path):
    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists():
        chroma = Path(shutil.which("chroma") or "chroma")
    port = _free_port()
    data = tmp_path / "server-data"
    proc = subprocess.Popen([str(chroma), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import requests

        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma run did not start (exit code {proc.poll()})")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}", data
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_http_client_path_uses_the_server(home, chroma_server, monkeypatch):
    from biomedgpt.tools.literature import LiteratureStore

    url, server_data = chroma_server
    monkeypatch.setenv("BIOMEDGPT_CHROMA_URL", url)
    store = LiteratureStore(bundled=False)
    report = store.ingest([DATA / "corpus.jsonl", DATA / "article.xml"], progress=False)
    assert report.chunks_added == 3
    assert type(store._client).__name__ != "PersistentClient"
    hit = store.search("amyloid plaques", k=1)[0]
    assert hit.pmid == "3001" and hit.year == 2015
    again = LiteratureStore(bundled=False).ingest([DATA / "corpus.jsonl", DATA / "article.xml"], progress=False)
    assert again.chunks_added == 0 and again.chunks_skipped == 3
    assert (server_data / "chroma.sqlite3").exists()  # the data live with the server...
    assert not (home / "chroma").exists()  # ...not in the embedded store
