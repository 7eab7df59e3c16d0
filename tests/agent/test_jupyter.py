"""The magics' session handling and the HTML rendering, in-process (the notebook test runs a real kernel)."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from biomedgpt.agent import jupyter
from biomedgpt.agent.assistant import AskResult, Assistant
from biomedgpt.cli import app


def test_magic_resumes_a_session_started_in_the_cli(monkeypatch, capsys):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    monkeypatch.setitem(jupyter._STATE, "assistant", None)
    monkeypatch.setitem(jupyter._STATE, "session", None)
    session = f"nb-{uuid.uuid4().hex[:8]}"
    out = CliRunner().invoke(app, ["ask", "What is the logP of CCO?", "--session", session, "--json"])
    assert out.exit_code == 0, out.output
    jupyter.biomed(f"--session {session} What is its molecular weight")
    assert jupyter.current_session() == session
    jupyter.biomed("", "How many heavy atoms does it have")  # a %%biomed cell, same session
    turns = Assistant().history(session)
    assert [t.question for t in turns][1:] == ["What is its molecular weight", "How many heavy atoms does it have"]
    assert "46.07" in turns[1].answer and "has 3 heavy atoms" in turns[2].answer


def test_render_html_escapes_and_links():
    result = AskResult(
        answer="**Aspirin** <script>x</script> weighs 180.16 g/mol [PubChem CID 2244]. Not a label [sic].",
        citations=[{"label": "PubChem CID 2244", "source": "PubChem",
                    "url": "https://pubchem.ncbi.nlm.nih.gov/compound/2244", "title": "Aspirin"}],
        tool_calls=[{"name": "uniprot_lookup", "args": {"query": "P0"}, "ok": False, "error": "UniProt: down"}],
        artifacts={"compounds": [{"cid": 2244, "title": "Aspirin", "smiles": "CC(=O)Oc1ccccc1C(=O)O"}],
                   "proteins": [{"accession": "P05067", "protein_name": "Amyloid-beta precursor protein"}]})
    html = jupyter.render_html(result)
    assert "<strong>Aspirin</strong>" in html and "<script>" not in html and "&lt;script&gt;" in html
    assert '[<a href="https://pubchem.ncbi.nlm.nih.gov/compound/2244" target="_blank">PubChem CID 2244</a>]' in html
    assert "[sic]" in html
    assert html.count("<svg") == 1  # the compound's depiction
    assert 'href="https://www.uniprot.org/uniprotkb/P05067/entry"' in html
    assert "UniProt: down" in html
    assert jupyter.depict_svg("not a smiles") is None
    assert result._repr_html_() == html
