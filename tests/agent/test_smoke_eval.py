"""The fast slice of the public evaluation set, end to end: ``pytest -q tests/agent/test_smoke_eval.py``.

``agent/data/eval/smoke.jsonl`` (22 rows from ``public.jsonl``, every category) runs through ``biomedgpt eval
assistant`` against the loopback PubChem/UniProt server on the recorded bodies in ``tests/data``, as a user would
run it. The full set's score is in the README; this slice guards it in ``make test``. The floor is below the
measured score so that one flaky row does not fail the suite, but a regression in a whole category does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOOR = 0.8


@pytest.mark.slow
def test_smoke_slice_of_the_public_set_passes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "biomedgpt.cli", "eval", "assistant", "--data",
                           str(ROOT / "agent/data/eval/smoke.jsonl"), "--fixtures", str(ROOT / "tests/data"), "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["total"] >= 15
    assert report["passed"] / report["total"] >= FLOOR, report["failures"]
