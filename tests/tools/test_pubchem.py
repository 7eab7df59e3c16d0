"""PubChemClient against recorded PUG-REST/PUG-View bodies: ``pytest -q tests/tools/test_pubchem.py``."""

from __future__ import annotations

import pytest

from biomedgpt.core.errors import InputError, InvalidSmilesError
from biomedgpt.tools.errors import NotFound, ServiceError
from biomedgpt.tools.pubchem import PROPERTIES, PubChemClient, classify_query, compound_from_row
from biomedgpt.tools.records import Compound
from tests.fakeservers import PROPERTY_URI, inject, pubchem_response


@pytest.mark.parametrize("query, expected", [
    ("2244", ("cid", 2244)),
    (2244, ("cid", 2244)),
    ("CID 2244", ("cid", 2244)),
    ("BSYNRYMUTXBXSQ-UHFFFAOYSA-N", ("inchikey", "BSYNRYMUTXBXSQ-UHFFFAOYSA-N")),
    ("CC(=O)OC1=CC=CC=C1C(=O)O", ("smiles", "CC(=O)OC1=CC=CC=C1C(=O)O")),
    ("c1ccccc1", ("smiles", "c1ccccc1")),
    ("aspirin", ("name", "aspirin")),
    ("2-(Acetyloxy)benzoic acid", ("name", "2-(Acetyloxy)benzoic acid")),
    ("vitamin C", ("name", "vitamin C")),
])
def test_classify_query(query, expected):
    assert classify_query(query) == expected


@pytest.mark.parametrize("bad", ["", "   ", "0", "C1CC(=O", "CC(=O)O[C@"])
def test_bad_queries_are_input_errors(bad):
    with pytest.raises(InputError) as caught:
        classify_query(bad)
    if bad.strip() and not bad.strip().isdigit():
        assert isinstance(caught.value, InvalidSmilesError) and bad in str(caught.value)


def test_old_and_new_smiles_keys_parse_to_the_same_fields():
    old = {"CID": 5950, "IsomericSMILES": "C[C@@H](C(=O)O)N", "CanonicalSMILES": "CC(C(=O)O)N",
           "MolecularWeight": "89.09"}
    new = {"CID": 5950, "SMILES": "C[C@@H](C(=O)O)N", "ConnectivitySMILES": "CC(C(=O)O)N", "MolecularWeight": "89.09"}
    for row in (old, new):
        compound = compound_from_row(row)
        assert compound.smiles == "C[C@@H](C(=O)O)N"  # the stereo-aware one
        assert compound.connectivity_smiles == "CC(C(=O)O)N"
        assert compound.molecular_weight == 89.09 and isinstance(compound.molecular_weight, float)
    only_canonical = compound_from_row({"CID": 1, "CanonicalSMILES": "CCO"})
    assert only_canonical.smiles == "CCO" and only_canonical.connectivity_smiles == "CCO"


def test_compound_by_name_with_details(fake_services):
    aspirin = PubChemClient().compound("aspirin")

    assert isinstance(aspirin, Compound)
    assert aspirin.cid == 2244 and aspirin.formula == "C9H8O4"
    assert aspirin.molecular_weight == 180.16  # sent as the string "180.16"
    assert aspirin.smiles == "CC(=O)OC1=CC=CC=C1C(=O)O"  # 2023 recording: IsomericSMILES
    assert aspirin.inchikey == "BSYNRYMUTXBXSQ-UHFFFAOYSA-N"
    assert aspirin.xlogp == 1.2 and aspirin.tpsa == 63.6
    assert aspirin.synonyms[:3] == ["aspirin", "ACETYLSALICYLIC ACID", "50-78-2"] and len(aspirin.synonyms) == 10
    assert [d.source for d in aspirin.descriptions] == ["ChEBI", "CAMEO Chemicals"]
    assert aspirin.descriptions[0].url.startswith("https://www.ebi.ac.uk/chebi/")
    paths = [a.path for a in fake_services.requests_to("/rest/")]
    assert paths[0] == "/rest/pug/compound/name/aspirin/cids/JSON"
    assert paths[1] == f"/rest/pug/compound/cid/property/{','.join(PROPERTIES)}/JSON"


def test_new_smiles_keys_from_the_server(fake_services):
    alanine = PubChemClient().by_cid(5950, details=False)

    assert alanine.title == "L-Alanine"
    assert alanine.smiles == "C[C@@H](C(=O)O)N" and alanine.connectivity_smiles == "CC(C(=O)O)N"
    assert alanine.xlogp == -3.0


def test_lookup_by_smiles_inchikey_and_cid(fake_services):
    client = PubChemClient()
    assert client.compound("CC(=O)OC1=CC=CC=C1C(=O)O", details=False).cid == 2244
    assert client.compound("RYYVLZVUVIJVGH-UHFFFAOYSA-N", details=False).title == "Caffeine"
    assert client.compound(5564, details=False).iupac_name == "5-chloro-2-(2,4-dichlorophenoxy)phenol"
    smiles_request = fake_services.requests_to("/rest/pug/compound/smiles/")[0]
    assert smiles_request.method == "GET"


def test_awkward_smiles_go_in_a_post_body(fake_services):
    # '/' cannot travel in a URL path (PubChem decodes %2F), so the SMILES is sent as a form field.
    with pytest.raises(NotFound) as caught:
        PubChemClient().by_smiles("F/C=C/F", details=False)
    sent = fake_services.requests_to("/rest/pug/compound/smiles/")
    assert [(a.method, a.path) for a in sent] == [("POST", "/rest/pug/compound/smiles/cids/JSON")]
    assert "smiles=F%2FC%3DC%2FF" in sent[0].body
    assert "F/C=C/F" in str(caught.value)  # CID 0 from PubChem means "no such structure"


def test_invalid_smiles_is_refused_before_any_request(fake_services):
    with pytest.raises(InvalidSmilesError) as caught:
        PubChemClient().by_smiles("C1CC(")
    assert "C1CC(" in str(caught.value)
    assert fake_services.count() == 0


def test_not_found_names_the_query(fake_services):
    with pytest.raises(NotFound) as caught:
        PubChemClient().compound("no such compound xyz")

    message = str(caught.value)
    assert "name 'no such compound xyz'" in message and "PUGREST.NotFound" in message
    assert caught.value.status == 404
    assert isinstance(caught.value, InputError)


def test_candidates_are_ranked_exact_title_first(fake_services):
    found = PubChemClient().candidates("L-Alanine", limit=5)

    # The server lists caffeine first; the exact title match wins, the rest keep PubChem's order.
    assert [c.cid for c in found] == [5950, 2519]
    assert fake_services.count("/rest/pug/compound/cid/property/") == 1


def test_properties_are_one_batched_post_in_the_order_asked(fake_services):
    found = PubChemClient().properties([5564, 2244, 2519, 2244])

    assert [c.cid for c in found] == [5564, 2244, 2519]
    sent = fake_services.requests_to("/rest/pug/compound/cid/property/")
    assert len(sent) == 1 and sent[0].method == "POST"
    assert sent[0].body == "cid=5564%2C2244%2C2519"


def test_large_property_requests_are_split_into_reported_batches(fake_services, progress):
    found = PubChemClient().properties([2244, 5564, 2519], batch_size=2)

    assert [c.cid for c in found] == [2244, 5564, 2519]
    assert [a.body for a in fake_services.requests_to("/rest/pug/compound/cid/property/")] == [
        "cid=2244%2C5564", "cid=2519"]
    assert progress.messages() == ["PubChem properties: batch 1 of 2 (2 CIDs)", "PubChem properties: batch 2 of 2 (1 CIDs)"]


def test_descriptions_fall_back_to_pug_view(fake_services):
    descriptions = PubChemClient().descriptions(2349)

    assert len(descriptions) == 1
    assert descriptions[0].text == "Cillin has been reported in Penicillium chrysogenum with data available."
    assert descriptions[0].source == "LOTUS - the natural products occurrence database"
    view = fake_services.requests_to("/rest/pug_view/")
    assert len(view) == 1 and "heading=Record+Description" in view[0].query


def test_synonyms_top_n(fake_services):
    assert PubChemClient().synonyms(2244, top=3) == ["aspirin", "ACETYLSALICYLIC ACID", "50-78-2"]


def test_similar_uses_fastsimilarity_2d_and_leaves_out_the_query(fake_services):
    found = PubChemClient().similar(2244, threshold=95, max_records=5)

    assert [c.cid for c in found] == [5564]
    sent = fake_services.requests_to("/rest/pug/compound/fastsimilarity_2d/")[0]
    assert sent.path == "/rest/pug/compound/fastsimilarity_2d/cid/2244/cids/JSON"
    assert "Threshold=95" in sent.query
    with pytest.raises(InputError):
        PubChemClient().similar(2244, threshold=150)


def test_similar_by_smiles(fake_services):
    found = PubChemClient().similar("CC(=O)Oc1ccccc1C(=O)O", threshold=80, max_records=3)

    assert [c.cid for c in found] == [2244]  # aspirin itself; nothing else served is that close
    sent = fake_services.requests_to("/rest/pug/compound/fastsimilarity_2d/smiles/")
    assert len(sent) == 1 and sent[0].method == "GET" and "Threshold=80" in sent[0].query


def test_other_faults_are_clear_service_errors(fake_services):
    inject(fake_services.server, PROPERTY_URI, [pubchem_response(
        {"Fault": {"Code": "PUGREST.BadRequest", "Message": "Invalid property", "Details": ["bad name"]}}, 400)])

    with pytest.raises(ServiceError) as caught:
        PubChemClient().by_cid(2244, details=False)

    assert not isinstance(caught.value, NotFound)
    assert "bad request" in str(caught.value) and "PUGREST.BadRequest: Invalid property" in str(caught.value)
    assert caught.value.status == 400 and caught.value.retried == 0
