"""similar_known (local references, PubChem on a loopback server, PubChem failing) and RDKit properties."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from biomedgpt.core.errors import InputError, InvalidSequenceError, InvalidSmilesError
from biomedgpt.model.retrieval import default_protein_index
from biomedgpt.tools.properties import molecule_properties
from biomedgpt.tools.similarity import similar_known

DATA = Path(__file__).resolve().parents[1] / "data" / "literature"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


# ---------------------------------------------------------------------------------- properties


def test_aspirin_properties_match_known_values():
    props = molecule_properties(ASPIRIN)
    # PubChem CID 2244: C9H8O4, MW 180.16, exact mass 180.0423, TPSA 63.6, 1 donor, 4 acceptors, 2 rotatable
    assert props.formula == "C9H8O4"
    assert props.average_mass == pytest.approx(180.159, abs=0.01)
    assert props.exact_mass == pytest.approx(180.0423, abs=1e-3)
    assert props.tpsa == pytest.approx(63.6, abs=0.1)
    assert props.logp == pytest.approx(1.31, abs=0.01)  # Crippen (PubChem's XLogP3 is 1.2)
    assert (props.h_bond_donors, props.h_bond_acceptors, props.rotatable_bonds) == (1, 4, 2)
    assert (props.rings, props.aromatic_rings, props.heavy_atoms) == (1, 1, 13)
    assert props.lipinski_violations == 0 and props.lipinski_pass
    assert "computed" in props.source and "RDKit" in props.source


def test_lipinski_violations_counted():
    # cyclosporin-like large lipophilic peptide: mass > 500 and many acceptors
    big = "CCC1C(=O)N(CC(=O)N(C(C(=O)NC(C(=O)N(C(C(=O)NC(C(=O)NC(C(=O)N(C(C(=O)N(C(C(=O)N(C(C(=O)N(C(C(=O)N1)C(C(C)CC=CC)O)C)C(C)C)C)CC(C)C)C)CC(C)C)C)C)C)CC(C)C)C)C(C)C)CC(C)C)C)C"
    props = molecule_properties(big)
    assert props.average_mass > 1000 and props.lipinski_violations >= 2 and not props.lipinski_pass


@pytest.mark.parametrize("bad", ["C1CC", "not-a-smiles", ""])
def test_invalid_smiles_is_named(bad):
    with pytest.raises(InvalidSmilesError, match=re.escape(repr(bad))):
        molecule_properties(bad)


# ------------------------------------------------------------------------------- similar_known


def test_similar_known_offline_molecules(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    hits = similar_known(smiles=ASPIRIN, k=3)
    assert len(hits) == 3
    assert all(h.kind == "molecule" and h.source == "ChEBI-20 reference" for h in hits)
    assert all(h.description.startswith("The molecule is") and h.url.startswith("https://pubchem") for h in hits)
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    assert hits[0].id == "31229"  # phenyl acetate: the nearest ChEBI-20 validation molecule to aspirin
    assert similar_known(smiles=ASPIRIN, k=3, exclude_ids=["31229"])[0].id != "31229"


def test_similar_known_proteins_leave_self_out():
    probe = default_protein_index().records[10]
    hits = similar_known(sequence=probe.sequence, k=2, online=False)
    assert probe.accession not in [h.id for h in hits]
    assert all(h.kind == "protein" and h.source == "Swiss-Prot reference" and h.sequence for h in hits)
    with_self = similar_known(sequence=probe.sequence, k=1, leave_self_out=False)
    assert with_self[0].id == probe.accession and with_self[0].similarity == pytest.approx(1.0)
    assert with_self[0].url == f"https://www.uniprot.org/uniprotkb/{probe.accession}/entry"


def test_similar_known_rejects_bad_input():
    with pytest.raises(InputError, match="exactly one"):
        similar_known()
    with pytest.raises(InputError, match="exactly one"):
        similar_known(smiles="CCO", sequence="MKT")
    with pytest.raises(InvalidSmilesError, match="C1CC"):
        similar_known(smiles="C1CC", online=False)
    with pytest.raises(InvalidSequenceError, match="'J'|'1'"):
        similar_known(sequence="MKT1")
    with pytest.raises(InputError, match="k must be"):
        similar_known(smiles="CCO", k=0)


@pytest.fixture()
def pubchem(httpserver, monkeypatch, tmp_path):
    monkeypatch.setenv("BIOMEDGPT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", httpserver.url_for("").rstrip("/"))
    monkeypatch.setenv("BIOMEDGPT_HTTP__MAX_RETRIES", "0")
    monkeypatch.setenv("BIOMEDGPT_HTTP__READ_TIMEOUT", "5")
    return httpserver


def test_similar_known_adds_pubchem_hits_online(pubchem):
    pubchem.expect_request(re.compile(r"/rest/pug/compound/fastsimilarity_2d/smiles/.*")).respond_with_data(
        (DATA / "pubchem_fastsimilarity_aspirin.synthetic.json").read_bytes(), content_type="application/json")
    pubchem.expect_request(re.compile(r"/rest/pug/compound/cid/property/.*"), method="POST").respond_with_data(
        (DATA / "pubchem_property_338_2244.synthetic.json").read_bytes(), content_type="application/json")
    hits = similar_known(smiles=ASPIRIN, k=2, online=True)
    local = [h for h in hits if h.source == "ChEBI-20 reference"]
    remote = [h for h in hits if h.source == "PubChem fastsimilarity_2d"]
    assert len(local) == 2
    # aspirin itself (CID 2244, same InChIKey) is left out; salicylic acid comes back with our Tanimoto
    assert [h.id for h in remote] == ["338"]
    assert remote[0].name == "Salicylic Acid" and 0.2 < remote[0].similarity < 0.9
    assert remote[0].url == "https://pubchem.ncbi.nlm.nih.gov/compound/338"
    paths = [entry[0].path for entry in pubchem.log]
    assert paths[0].startswith("/rest/pug/compound/fastsimilarity_2d/smiles/")
    assert any(p.startswith("/rest/pug/compound/cid/property/") for p in paths)


def test_pubchem_failure_is_reported_and_local_hits_survive(pubchem):
    from biomedgpt.tools.progress import listen

    pubchem.expect_request(re.compile(r"/rest/pug/.*")).respond_with_data(
        json.dumps({"Fault": {"Code": "PUGREST.ServerError", "Message": "boom"}}), status=500,
        content_type="application/json")
    messages = []
    with listen(lambda message, **data: messages.append(message)):
        hits = similar_known(smiles=ASPIRIN, k=2, online=True)
    assert [h.source for h in hits] == ["ChEBI-20 reference"] * 2
    assert any("PubChem similarity search failed" in m for m in messages)
    assert len(pubchem.log) >= 1  # the request really went out


def test_offline_mode_makes_no_request(pubchem, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    hits = similar_known(smiles=ASPIRIN, k=2)
    assert len(hits) == 2 and not pubchem.log
