"""Answers with citations: artifact filing, the extractive offline answer, the LLM citation check."""

from __future__ import annotations

from biomedgpt.agent.answer import (
    check_citations,
    cited_labels,
    collect_artifacts,
    compose_answer,
    direct_answer,
    sources_from_state,
)
from biomedgpt.tools.properties import molecule_properties

ASPIRIN = {"cid": 2244, "title": "Aspirin", "formula": "C9H8O4", "molecular_weight": 180.16, "xlogp": 1.2,
           "smiles": "CC(=O)OC1=CC=CC=C1C(=O)O",
           "descriptions": [{"text": "Aspirin is a salicylate. It inhibits COX.", "source": "ChEBI", "url": ""}]}
MODEL = {"text": "An acetate ester.", "question": "Describe it", "inputs": {"smiles": "CCO"}, "model": "mini",
         "trained": False, "note": ""}
PASSAGE = {"text": "BRCA1 mutations are rare. More text.", "pmid": "8531967", "title": "BRCA1 study", "year": 1996,
           "chunk": 0, "score": 0.8}
HIT = {"kind": "molecule", "id": "31229", "name": "phenyl acetate", "description": "An acetate ester.",
       "similarity": 0.54, "source": "ChEBI-20 reference"}


def test_collect_artifacts_files_nested_records():
    props = molecule_properties("CCO").model_dump()
    found = collect_artifacts({"compound": ASPIRIN, "candidates": [ASPIRIN], "extra": [props, MODEL, PASSAGE, HIT],
                               "other": {"not": "a record"}})
    assert found["compounds"] == [ASPIRIN] and found["properties"] == [props]
    assert found["model_answers"] == [MODEL] and found["passages"] == [PASSAGE] and found["similar"] == [HIT]
    assert found["proteins"] == []


def test_offline_answer_cites_every_claim_and_labels_model_output():
    state = {"compounds": [ASPIRIN], "model_answers": [MODEL], "passages": [PASSAGE], "similar": [HIT],
             "properties": [molecule_properties("CC(=O)Oc1ccccc1C(=O)O").model_dump()]}
    errors = [{"name": "uniprot_lookup", "args": {"query": "X"}, "error": "Error: UniProt: down"}]
    text = compose_answer("What is the molecular weight and logP of aspirin?", state, errors)
    first = text.split("\n")[0]
    assert first == ("The molecular weight of Aspirin is 180.16 g/mol [PubChem CID 2244]. "
                     "The XLogP of Aspirin is 1.2 [PubChem CID 2244].")
    claims = [line for line in text.splitlines() if line.startswith("- ") and "uniprot_lookup" not in line]
    assert claims and all(cited_labels(line) for line in claims)  # every claim carries a label
    assert "model output, not a database fact; untrained encoders — not evidence" in text
    assert "“An acetate ester.” [BioMedGPT]" in text
    assert "[PMID 8531967]" in text and "[PubChem CID 31229]" in text and "[RDKit]" in text
    assert "- uniprot_lookup(query='X'): UniProt: down" in text
    sources = sources_from_state(state)
    assert sources["BioMedGPT"]["title"].endswith("untrained encoders — not evidence)")
    assert sources["PMID 8531967"]["url"] == "https://pubmed.ncbi.nlm.nih.gov/8531967/"


def test_direct_answer_falls_back_to_rdkit():
    props = molecule_properties("CCO").model_dump()
    assert direct_answer("How many H-bond donors and rings?", {"properties": [props]}) == [
        "`CCO` has 1 H-bond donor [RDKit].", "`CCO` has 0 rings (0 aromatic) [RDKit]."]
    assert direct_answer("Describe it", {"properties": [props]}) == []
    assert compose_answer("anything", {}, []).startswith("I found no evidence")
    assert compose_answer("x", {}, [], limited_after=4).startswith("Could not finish in 4 steps")


def test_check_citations():
    sources = sources_from_state({"compounds": [ASPIRIN]})
    assert check_citations("Aspirin [PubChem CID 2244; PMID 1].", sources) == \
        "Aspirin [PubChem CID 2244; unverified: PMID 1]."
    assert check_citations("No labels.", sources) == "No labels.\n\nSources: [PubChem CID 2244]"
    assert check_citations("[see above] fine [PubChem CID 2244]", sources) == "[see above] fine [PubChem CID 2244]"
    noted = check_citations("It is an ester [BioMedGPT].", sources_from_state({"model_answers": [MODEL]}), [MODEL])
    assert noted.endswith("model output, not a database fact (untrained encoders — not evidence).")


def test_superlative_questions_name_the_winner_from_one_source():
    props = [molecule_properties(s).model_dump() for s in
             ("CC(=O)Oc1ccccc1C(=O)O", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C")]
    highest = direct_answer("Which of them has the highest logP?", {"properties": props})
    assert highest[0] == "Of these 3, `CC(C)Cc1ccc(C(C)C(=O)O)cc1` has the highest logP (3.07) [RDKit]."
    lowest = direct_answer("Which has the lowest molecular weight?", {"properties": props})
    assert lowest[0].startswith("Of these 3, `CC(=O)Oc1ccccc1C(=O)O` has the lowest molecular weight (180.16")
    ibuprofen = {"cid": 3672, "title": "Ibuprofen", "xlogp": 3.5}
    from_pubchem = direct_answer("Which has the highest logP?", {"compounds": [ASPIRIN, ibuprofen], "properties": props})
    assert from_pubchem[0] == "Of these 2, Ibuprofen has the highest logP (3.5) [PubChem CID 3672]."
    assert direct_answer("What is the logP?", {"properties": props})[0].startswith("The Crippen logP")
