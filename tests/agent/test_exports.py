"""Exports of answers and runs: --format md|json|csv (--json its alias), --sdf, --cite bibtex|ris, to_dataframe(),
and sources printed with their links whole."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest
from rich.console import Console
from typer.testing import CliRunner

from biomedgpt.agent import export
from biomedgpt.agent.assistant import AskResult, Assistant
from biomedgpt.agent.render import render_result
from biomedgpt.cli import app

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
COMPARE = f"Compare the molecular weight and logP of CCO and {ASPIRIN}"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ask_formats_and_the_json_alias():
    runner = CliRunner()
    as_csv = runner.invoke(app, ["ask", COMPARE, "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    header = as_csv.stdout.splitlines()[0].split(",")
    assert header == ["entity", "kind", "smiles", "molecular weight (g/mol)", "logP", "source", "url"]
    rows = _rows(as_csv.stdout)
    assert [(r["entity"], r["molecular weight (g/mol)"], r["source"]) for r in rows] == [
        ("CCO", "46.07", "RDKit"), (ASPIRIN, "180.16", "RDKit")]
    assert rows[1]["logP"] == "1.31" and rows[1]["url"] == "https://www.rdkit.org"

    as_json = runner.invoke(app, ["ask", COMPARE, "--json"])
    assert json.loads(as_json.stdout) == json.loads(runner.invoke(app, ["ask", COMPARE, "--format", "json"]).stdout)

    md = runner.invoke(app, ["ask", "What is the TPSA of CCO?", "--format", "md"]).stdout
    assert md.startswith("The TPSA of `CCO` is 20.23") and "**Sources**" in md and "<https://www.rdkit.org>" in md
    assert "\x1b[" not in md  # plain text, no terminal codes

    clash = runner.invoke(app, ["ask", "x", "--json", "--format", "csv"])
    assert clash.exit_code == 2 and "--json is --format json" in clash.output
    unknown = runner.invoke(app, ["ask", "x", "--format", "xml"])
    assert unknown.exit_code == 2 and "'xml' is not one of md, json, csv" in unknown.output


def test_sdf_and_citation_files(tmp_path):
    from rdkit import Chem

    runner = CliRunner()
    sdf = tmp_path / "mols.sdf"
    out = runner.invoke(app, ["ask", COMPARE, "--json", "--sdf", str(sdf)])
    assert out.exit_code == 0, out.output
    json.loads(out.stdout)  # stdout stays pure JSON; the note goes to stderr
    assert "wrote 2 molecule(s)" in out.stderr
    mols = [m for m in Chem.SDMolSupplier(str(sdf))]
    assert [m.GetProp("_Name") for m in mols] == ["CCO", ASPIRIN]
    assert mols[1].GetProp("source") == "RDKit" and mols[1].GetProp("molecular weight (g/mol)") == "180.16"
    assert mols[0].GetNumConformers() == 1  # 2D coordinates

    bib, ris = tmp_path / "refs.bib", tmp_path / "refs.ris"
    question = "papers on BRCA1 mutations in breast cancer"
    out = runner.invoke(app, ["ask", question, "--format", "md", "--cite", "bibtex", str(bib)])
    assert out.exit_code == 0, out.output
    entries = bib.read_text().count("@article{pmid")
    assert entries >= 1 and "pmid = {" in bib.read_text() and "url = {https://pubmed.ncbi.nlm.nih.gov/" in bib.read_text()
    cited = [line for line in out.stdout.splitlines() if line.startswith("- [PMID ")]
    assert entries == len(cited)  # the literature the answer cites, once each
    runner.invoke(app, ["ask", question, "--cite", "ris", str(ris)])
    text = ris.read_text()
    assert text.count("TY  - JOUR") == entries and text.count("ER  - ") == entries and "DB  - PubMed" in text

    none = runner.invoke(app, ["ask", "What is the TPSA of CCO?", "--cite", "bibtex", str(tmp_path / "none.bib")])
    assert none.exit_code == 0 and "cites no literature" in none.stderr and not (tmp_path / "none.bib").exists()
    bad = runner.invoke(app, ["ask", "x", "--cite", "endnote", str(bib)])
    assert bad.exit_code == 2 and "not bibtex or ris" in bad.output


def test_to_dataframe_and_without_pandas(monkeypatch):
    result = Assistant().ask(COMPARE)
    assert result.attributes == ["molecular_weight", "logp"]
    frame = result.to_dataframe()
    assert list(frame.columns) == ["entity", "kind", "smiles", "molecular weight (g/mol)", "logP", "source", "url"]
    assert frame["molecular weight (g/mol)"].tolist() == ["46.07", "180.16"]
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if the extra were not installed
    with pytest.raises(export.MissingExtra, match=r"pip install 'biomedgpt\[pandas\]'"):
        result.to_dataframe()


def test_run_exports_have_a_step_column(tmp_path):
    script = tmp_path / "s.yaml"
    script.write_text("steps:\n  - ask: 'What is the molecular weight of {item}?'\n    for_each: xs\n"
                      "vars:\n  xs: [CCO, CCCO]\n")
    out = CliRunner().invoke(app, ["run", str(script), "--format", "csv", "--sdf", str(tmp_path / "r.sdf")])
    assert out.exit_code == 0, out.output
    rows = _rows(out.stdout)
    assert [(r["step"], r["entity"], r["molecular weight (g/mol)"]) for r in rows] == [
        ("1.1", "CCO", "46.07"), ("1.2", "CCCO", "60.10")]
    assert "2 steps, 0 failed" in out.stderr and "wrote 2 molecule(s)" in out.stderr
    as_json = json.loads(CliRunner().invoke(app, ["run", str(script), "--format", "json"]).stdout)
    assert as_json["total"] == 2 and as_json["interrupted"] is False
    assert as_json["steps"][0]["artifacts"]["properties"][0]["formula"] == "C2H6O"


def test_source_links_are_never_split():
    url = "https://pubchem.ncbi.nlm.nih.gov/compound/2244#section=Names-and-Identifiers&fullscreen=true&extra=" + "x" * 40
    result = AskResult(answer="Aspirin [PubChem CID 2244].", citations=[
        {"label": "PubChem CID 2244", "source": "PubChem", "url": url, "title": "Aspirin, a long title " * 3}],
        tool_calls=[{"name": "pubchem_lookup", "args": {"query": "aspirin"}, "ok": True, "error": None}])
    buffer = io.StringIO()
    render_result(Console(file=buffer, width=60, force_terminal=False), result)
    text = buffer.getvalue()
    assert url in text  # whole, on one line (the terminal may wrap it; rich does not cut it)
    assert "tools: pubchem_lookup(query='aspirin') ✓" in text
