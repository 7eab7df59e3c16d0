"""The HTTP cache shared by two processes, and a writer killed mid-transaction: ``pytest -q tests/tools/test_cache_processes.py``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from biomedgpt.core.settings import get_settings, reset_settings
from biomedgpt.tools.http import cache_path
from biomedgpt.tools.services import reset_services
from biomedgpt.tools.pubchem import PubChemClient

PROPS = "/rest/pug/compound/cid/property/"

CHILD = textwrap.dedent("""
    import os, sqlite3, sys
    from biomedgpt.tools.http import cache_path
    from biomedgpt.tools.pubchem import PubChemClient

    assert PubChemClient().by_cid(5564, details=False).formula == "C12H7Cl3O2"
    # Now die in the middle of a write: a transaction that is begun and never committed.
    db = sqlite3.connect(cache_path(), isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("DELETE FROM responses")
    db.execute("INSERT INTO responses (key, value) VALUES ('half-written', x'00')")
    sys.stdout.flush()
    os._exit(9)
""")


def test_two_processes_share_the_cache_and_a_killed_writer_loses_nothing(fake_services):
    client = PubChemClient()
    client.by_cid(2244, details=False)
    path = cache_path(get_settings())
    assert sqlite3.connect(path).execute("pragma journal_mode").fetchone()[0] == "wal"

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == 9, child.stderr[-2000:]
    assert fake_services.count(PROPS) == 2  # one look-up from each process

    reset_settings()
    reset_services()
    again = PubChemClient()
    assert again.by_cid(5564, details=False).cid == 5564  # written by the other process
    assert again.by_cid(2244, details=False).cid == 2244  # survived the killed writer's DELETE
    assert fake_services.count(PROPS) == 2  # both answered from the cache
    keys = {row[0] for row in sqlite3.connect(path).execute("select key from responses")}
    assert "half-written" not in keys and len(keys) == 2
