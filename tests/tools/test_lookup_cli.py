"""``biomedgpt lookup compound|protein`` through typer's CliRunner: ``pytest -q tests/tools/test_lookup_cli.py``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from biomedgpt.cli import app
from biomedgpt.tools.records import Compound, ProteinEntry

runner = CliRunner()


def test_lookup_compound_json(fake_services):
    result = runner.invoke(app, ["lookup", "compound", "aspirin", "--json"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == set(Compound.model_fields)
    assert data["cid"] == 2244 and data["molecular_weight"] == 180.16
    assert data["descriptions"][0]["source"] == "ChEBI"


def test_lookup_compound_table(fake_services):
    result = runner.invoke(app, ["lookup", "compound", "RYYVLZVUVIJVGH-UHFFFAOYSA-N"])

    assert result.exit_code == 0, result.output
    assert "PubChem CID 2519" in result.stdout and "C8H10N4O2" in result.stdout


def test_lookup_protein_json_and_table(fake_services):
    result = runner.invoke(app, ["lookup", "protein", "P05067", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == set(ProteinEntry.model_fields)
    assert data["gene_names"][0] == "APP" and data["length"] == 770

    table = runner.invoke(app, ["lookup", "protein", "APP human"])
    assert table.exit_code == 0, table.output
    assert "UniProt P05067" in table.stdout and "Amyloid-beta precursor protein" in table.stdout


def test_lookup_errors_are_one_line(fake_services):
    result = runner.invoke(app, ["lookup", "compound", "no such compound xyz"])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: PubChem: no compound found for name 'no such compound xyz'")

    inactive = runner.invoke(app, ["lookup", "protein", "Q00007"])
    assert inactive.exit_code == 1
    assert "demerged into P63151, P63150" in inactive.stderr and "Traceback" not in inactive.output


def test_lookup_shows_retries_on_stderr(fake_services):
    from tests.fakeservers import PROPERTY_URI, busy_json, inject

    inject(fake_services.server, PROPERTY_URI, [busy_json()])
    result = runner.invoke(app, ["lookup", "compound", "2244", "--json"])

    assert result.exit_code == 0, result.output
    assert "PubChem busy (HTTP 503), retrying" in result.stderr
    assert json.loads(result.stdout)["cid"] == 2244
