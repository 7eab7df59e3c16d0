"""What a new ``biomedgpt ask`` process imports: ``pytest tests/cli/test_cold_start.py``.

Why: the cold start of a SMILES question is mostly imports (issue 16, item 2), and one careless top-level import
(LangGraph, LangSmith, torch, …) would bring the seconds back without any test failing. Each test runs the real
CLI in a new Python process and reads its ``sys.modules`` at exit; nothing here measures time (bench/cold_start.py
does). The shared test home is warmed first, in this process, so the child never exports the ONNX question
encoder (which needs torch) or fits the classifiers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: Never needed to answer a SMILES question through the router.
HEAVY = ("langsmith", "langgraph", "langchain_core", "openai", "torch", "transformers", "sentence_transformers",
         "chromadb", "nltk", "scipy", "sklearn", "requests_cache")

_CHILD = """
import atexit, json, sys
report = sys.argv[1]
def _report():
    with open(report, "w") as out:
        json.dump(sorted(sys.modules), out)
atexit.register(_report)
sys.argv = ["biomedgpt", *sys.argv[2:]]
from biomedgpt.cli import main
main()
"""


def _modules_after(tmp_path, *args: str, **env: str) -> tuple[set[str], str]:
    report = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _CHILD, str(report), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)
    assert done.returncode == 0, done.stderr
    return set(json.loads(report.read_text())), done.stdout


@pytest.fixture(scope="module")
def warm_home():
    """The question encoder exported and the classifiers fitted in the shared test home (once)."""
    from biomedgpt.agent.planner import PlanContext, plan

    plan("What is the molecular weight of CCO?", PlanContext())


@pytest.mark.parametrize("offline", ["1", "0"])
def test_a_smiles_question_imports_nothing_heavy(tmp_path, warm_home, offline):
    # online: the services point at a closed loopback port, so nothing could leave the machine anyway
    modules, out = _modules_after(tmp_path, "ask", "What is the molecular weight of CCO?", BIOMEDGPT_OFFLINE=offline,
                                  BIOMEDGPT_PUBCHEM_URL="http://127.0.0.1:9/rest/pug",
                                  BIOMEDGPT_UNIPROT_URL="http://127.0.0.1:9/uniprot",
                                  BIOMEDGPT_EUTILS_URL="http://127.0.0.1:9/eutils")
    assert "46.07" in out and "[RDKit]" in out
    loaded = sorted(name for name in modules if name.split(".")[0] in HEAVY)
    assert not loaded, f"a SMILES ask imported {loaded[:12]}"
    assert "biomedgpt.agent.fast_path" in modules and "rdkit.Chem" in modules


def test_the_json_output_of_a_smiles_question_imports_nothing_heavy(tmp_path, warm_home):
    modules, out = _modules_after(tmp_path, "ask", "--json", "Compare the logP of CCO and c1ccccc1",
                                  BIOMEDGPT_OFFLINE="1")
    assert json.loads(out)["tool_calls"][0]["name"] == "molecule_properties"
    assert not [name for name in modules if name.split(".")[0] in HEAVY]


def test_a_literature_question_loads_only_the_encoder_and_the_store(tmp_path, warm_home):
    """The query is embedded by the ONNX copy of MiniLM (no torch, sentence-transformers or SciPy), and after the
    first search of a home the bundled corpus is checked by its remembered chunk ids (no NLTK)."""
    from biomedgpt.tools.literature import LiteratureStore

    LiteratureStore().ensure_bundled()  # the first check of this home (chunks the corpus once)
    modules, out = _modules_after(tmp_path, "ask", "What does the literature say about BRCA1 and breast cancer?",
                                  BIOMEDGPT_OFFLINE="1")
    assert "[PMID" in out
    loaded = [name for name in modules if name.split(".")[0] in HEAVY and name.split(".")[0] not in
              ("chromadb", "requests_cache")]
    assert not loaded, f"a literature ask imported {sorted(loaded)[:12]}"
    assert "chromadb" in modules and "onnxruntime" in modules
