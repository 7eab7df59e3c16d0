"""``examples/quickstart.ipynb`` runs in a real kernel (nbclient): depictions and citations, plain-text and Markdown
fallbacks, a ``%biomed`` line ending in ``?``, and nothing on stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NATIVE_KERNEL_NAME
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


class _ThisPythonKernels(KernelSpecManager):
    """The ``python3`` kernel is this interpreter (the venv's), whatever else is installed on the machine."""

    def get_kernel_spec(self, kernel_name):
        if kernel_name == NATIVE_KERNEL_NAME:
            from ipykernel.kernelspec import get_kernel_dict
            from jupyter_client.kernelspec import KernelSpec

            spec = get_kernel_dict()
            spec["argv"][0] = sys.executable
            return KernelSpec(resource_dir="", **spec)
        return super().get_kernel_spec(kernel_name)


@pytest.mark.slow
def test_quickstart_notebook_runs_with_depictions_and_citations(monkeypatch, tmp_path):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("BIOMEDGPT_MODEL", "mini")  # the shipped model: loading it is what drew 272-step bars
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, kernel_name=NATIVE_KERNEL_NAME, timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}},
                            kernel_manager_kwargs={"kernel_spec_manager": _ThisPythonKernels()})
    client.execute()

    def html_of(index: int) -> str:
        outputs = notebook.cells[index].outputs
        return "".join(o.get("data", {}).get("text/html", "") for o in outputs)

    magic_cells = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and c.source.lstrip("%").startswith("biomed")
                   and "load_ext" not in c.source]
    first, follow_up, model, cell_magic = (html_of(i) for i in magic_cells)
    assert "<svg" in first  # an RDKit depiction
    assert '<a href="https://www.rdkit.org" target="_blank">RDKit</a>' in first  # a citation as a link
    assert "[BioMedGPT]" not in first  # describing a structure is the records' work; the model is asked below
    assert "[BioMedGPT]" in model and "model output" in model  # model text is labelled as such
    assert model.index("ChEBI-20 CID") < model.index("model output")  # after the nearest known molecules
    assert "180.16" in follow_up and "RDKit" in follow_up  # "its" resolved through the session
    assert "<svg" in cell_magic and "Computed with RDKit" in cell_magic
    # every answer has plain-text and Markdown forms, not "<IPython.core.display.HTML object>"
    for index in magic_cells:
        data = [o.get("data", {}) for o in notebook.cells[index].outputs if o.get("output_type") == "display_data"]
        assert data and all("text/markdown" in d and "text/plain" in d for d in data)
        assert not any("IPython.core.display" in d["text/plain"] for d in data)
    assert "180.16" in "".join(o["data"]["text/plain"] for o in notebook.cells[magic_cells[1]].outputs)
    assert "[RDKit]" in "".join(o["data"]["text/markdown"] for o in notebook.cells[magic_cells[1]].outputs)
    # "%biomed What is its molecular weight?" was a question (IPython's help would have shown the magic's docs)
    assert notebook.cells[magic_cells[1]].source.rstrip().endswith("?")
    assert "ask in this notebook's session" not in follow_up
    # no stderr output anywhere: no progress bars, no TqdmWarning
    noise = [(i, o.get("text", "")[:200]) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             for o in cell.outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert noise == []
    last = notebook.cells[-1].outputs
    assert any("'RDKit'" in o.get("data", {}).get("text/plain", "") for o in last)
