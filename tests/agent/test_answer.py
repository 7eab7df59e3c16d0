"""Answers with citations: artifact filing, the extractive offline answer, the LLM citation check."""

from __future__ import annotations

from biomedgpt.agent.answer import (
    check_citations,
    cited_labels,
    file_records,
    compose_answer,
    sources_from_state,
    subjects_from_state,
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


def test_records_are_filed_by_the_tool_that_returned_them_never_by_key_shape():
    from biomedgpt.tools.langchain_tools import records_of

    props = molecule_properties("CCO").model_dump()
    found = file_records(records_of("pubchem_lookup", ASPIRIN) + records_of("molecule_properties", props)
                         + records_of("describe_molecule", MODEL) + records_of("similar_known", [HIT])
                         + records_of("literature_search", {"passages": [PASSAGE], "searched": 10})
                         + records_of("pubmed_fetch", {"query": "x", "records": 3}))
    assert found["compounds"][0]["cid"] == 2244 and found["properties"][0]["smiles"] == "CCO"
    assert found["model_answers"][0]["text"] == MODEL["text"] and found["passages"][0]["pmid"] == "8531967"
    assert found["similar"][0]["id"] == "31229" and found["proteins"] == []
    # a record that does not fit the tool's type is an error, not a guess
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError):
        records_of("uniprot_lookup", ASPIRIN)


def test_offline_answer_opens_with_the_asked_fields_and_cites_every_claim():
    state = {"compounds": [ASPIRIN], "model_answers": [MODEL], "passages": [PASSAGE], "similar": [HIT],
             "properties": [molecule_properties("CC(=O)Oc1ccccc1C(=O)O").model_dump()],
             "intent": "attribute", "attributes": ["molecular_weight", "logp"]}
    errors = [{"name": "uniprot_lookup", "args": {"query": "X"}, "error": "Error: UniProt: down"}]
    text = compose_answer("What is the molecular weight and logP of aspirin?", state, errors)
    first = text.split("\n")[0]
    assert first == ("The molecular weight of Aspirin is 180.16 g/mol [PubChem CID 2244]. "
                     "The XLogP3 of Aspirin is 1.2 [PubChem CID 2244].")
    assert "[PMID 8531967]" in text  # the passage scored above the relevance floor
    assert "- uniprot_lookup(query='X'): UniProt: down" in text
    sources = sources_from_state(state)
    assert sources["BioMedGPT"]["title"].endswith("untrained encoders — not evidence)")
    assert sources["PMID 8531967"]["url"] == "https://pubmed.ncbi.nlm.nih.gov/8531967/"
    assert "ChEBI-20 CID 31229" in sources  # a ChEBI-20 reference is not cited as a PubChem record


def test_description_puts_database_facts_before_model_text_and_hides_weak_neighbours():
    weak = dict(HIT, similarity=0.2)
    state = {"compounds": [ASPIRIN], "model_answers": [MODEL], "similar": [weak], "intent": "describe"}
    text = compose_answer("Describe aspirin", state)
    assert text.index("[PubChem CID 2244]") < text.index("[BioMedGPT]")
    assert "No close known molecule" in text and "phenyl acetate" not in text
    assert "model output, not a database fact; untrained encoders — not evidence" in text


def test_fields_fall_back_to_rdkit_and_missing_ones_are_said_plainly():
    props = molecule_properties("CCO").model_dump()
    text = compose_answer("How many H-bond donors, and the IUPAC name?",
                          {"properties": [props], "intent": "attribute", "offline": True,
                           "attributes": ["hbond_donors", "iupac_name"]})
    assert "`CCO` has 1 H-bond donor [RDKit]." in text
    assert "IUPAC name of `CCO` needs a PubChem look-up, which is not possible offline" in text
    no_field = compose_answer("melting point?", {"compounds": [ASPIRIN], "intent": "attribute",
                                                 "attributes": ["iupac_name"]})
    assert no_field == "PubChem's record for Aspirin has no IUPAC name [PubChem CID 2244]."
    assert compose_answer("anything", {}, []).startswith("I found no evidence")
    assert compose_answer("x", {}, [], limited_after=4).startswith("Could not finish in 4 steps")


def test_off_domain_and_unclear_questions_say_what_the_assistant_does():
    assert compose_answer("weather?", {"intent": "out_of_domain"}).startswith("That is outside what I can help with")
    assert "not sure what you are asking" in compose_answer("hmm", {"intent": "unclear"})


def test_literature_below_the_floor_is_not_evidence():
    weak = dict(PASSAGE, score=0.05)
    text = compose_answer("papers on graphene", {"passages": [weak], "intent": "literature", "searched": 2100})
    assert text.startswith("No relevant passage in the literature store (2,100 chunks searched)")
    doc = {"text": "Our lab notes.", "title": "notes", "chunk": 2, "score": 0.9, "source": "/tmp/x/notes.md"}
    shown = compose_answer("notes", {"passages": [doc, dict(doc, chunk=3)], "intent": "literature"})
    assert shown.count("[Doc notes.md]") == 1  # one entry per document, ingested documents cited by file name


def test_check_citations():
    sources = sources_from_state({"compounds": [ASPIRIN]})
    assert check_citations("Aspirin [PubChem CID 2244; PMID 1].", sources) == \
        "Aspirin [PubChem CID 2244; unverified: PMID 1]."
    assert check_citations("No labels.", sources) == "No labels.\n\nSources: [PubChem CID 2244]"
    assert check_citations("[see above] fine [PubChem CID 2244]", sources) == "[see above] fine [PubChem CID 2244]"
    noted = check_citations("It is an ester [BioMedGPT].", sources_from_state({"model_answers": [MODEL]}), [MODEL])
    assert noted.endswith("model output, not a database fact (untrained encoders — not evidence).")


def test_comparisons_keep_every_entity_rank_in_words_and_show_a_table():
    props = [molecule_properties(x).model_dump() for x in
             ("CC(=O)Oc1ccccc1C(=O)O", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C")]
    state = {"properties": props, "intent": "compare", "attributes": ["logp"]}
    text = compose_answer("Which of them has the highest logP?", state)
    assert text.startswith("`CC(C)Cc1ccc(cc1)C(C)C(=O)O` has the highest logP (3.07)")  # named as it was written
    assert text.count("| `") == 3  # a table row per molecule
    ibuprofen = {"cid": 3672, "title": "Ibuprofen", "xlogp": 3.5, "smiles": "CC(C)Cc1ccc(cc1)C(C)C(=O)O"}
    subjects = subjects_from_state({"compounds": [ASPIRIN, ibuprofen], "properties": props})
    assert [s.name for s in subjects] == ["Aspirin", "Ibuprofen", "`Cn1cnc2c1c(=O)n(C)c(=O)n2C`"]
    both = {"compounds": [ASPIRIN, ibuprofen], "properties": props[:2], "intent": "compare", "attributes": ["logp"]}
    assert compose_answer("Which has the lower logP?", both).startswith(
        "Aspirin has the lower logP: Ibuprofen (3.5) > Aspirin (1.2), a difference of 2.3 [PubChem CID 3672] "
        "[PubChem CID 2244].")
    assert compose_answer("Is aspirin more lipophilic than ibuprofen?", both).startswith("No: Ibuprofen has the higher")
    # caffeine has no PubChem record here: every molecule is ranked by RDKit's Crippen logP instead
    mixed = compose_answer("Which has the lowest logP?", {**both, "properties": props})
    assert mixed.startswith("`Cn1cnc2c1c(=O)n(C)c(=O)n2C` has the lowest logP (-1.03)") and "[RDKit]" in mixed
    same = [molecule_properties(x).model_dump() for x in ("CCO", "CCCCCCO")]
    assert compose_answer("Which is more polar?", {"properties": same, "intent": "compare", "attributes": ["tpsa"]}
                          ).startswith("`CCO` and `CCCCCCO` have the same TPSA (20.23) [RDKit].")


def test_enzyme_commission_numbers_come_from_uniprots_names_or_are_said_missing():
    import json
    from pathlib import Path

    from biomedgpt.tools.uniprot import protein_from_json

    data = Path(__file__).resolve().parents[1] / "data" / "uniprot"
    enzyme = protein_from_json(json.loads((data / "uniprotkb_P0DTR4.json").read_text()))
    assert enzyme.ec_numbers == ["3.5.1.-"]
    text = compose_answer("EC number of P0DTR4", {"proteins": [enzyme.model_dump()], "intent": "attribute",
                                                 "attributes": ["ec_number"]})
    assert "3.5.1.-" in text and "[UniProt P0DTR4]" in text.split("\n")[0]
    receptor = protein_from_json(json.loads((data / "uniprotkb_P05067.json").read_text()))
    assert receptor.ec_numbers == []
    text = compose_answer("EC number of P05067", {"proteins": [receptor.model_dump()], "intent": "attribute",
                                                 "attributes": ["ec_number"]})
    assert "lists no EC number [UniProt P05067]" in text.split("\n")[0]


def test_a_passage_between_the_floor_and_sure_must_name_the_questions_topic():
    near_miss = {**PASSAGE, "text": "The hemochromatosis 845 G-->A mutation in non-Caucasian populations.",
                 "title": "Hemochromatosis mutations", "pmid": "9585606", "score": 0.49}
    state = {"passages": [near_miss], "intent": "literature", "searched": 697}
    assert compose_answer("recent work on the genetics of hemophilia?", state).startswith(
        "No relevant passage in the literature store (697 chunks searched)")
    assert "[PMID 9585606]" in compose_answer("genetics of hemochromatosis in Australia?", state)
    sure = {**near_miss, "score": 0.7}  # relevant on meaning alone, whatever words it uses
    assert "[PMID 9585606]" in compose_answer("recent work on the genetics of hemophilia?", {**state, "passages": [sure]})


def test_what_is_known_about_a_condition_is_a_literature_question():
    from biomedgpt.agent.understanding import understand

    assert understand("what is known about myotonic dystrophy CTG repeats").intent == "literature"
    assert understand("what is familial adenomatous polyposis").intent == "literature"
    assert understand("describe the APC tumour suppressor").intent == "describe"
    assert understand("tell me about aspirin").intent == "describe"


def test_pairwise_similarity_is_read_in_words_and_a_protein_sequence_is_weighed():
    same = [molecule_properties(x).model_dump() for x in ("CC(=O)Oc1ccccc1C(=O)O", "OC(=O)c1ccccc1OC(C)=O")]
    text = compose_answer("same thing?", {"properties": same, "intent": "similarity_pair"})
    assert "is 1.00" in text and "they are the same molecule (identical InChIKey)" in text
    far = [molecule_properties(x).model_dump() for x in ("CCO", "c1ccc2ccccc2c1")]
    assert "low: structurally dissimilar" in compose_answer("similar?", {"properties": far, "intent": "similarity_pair"})
    sequence = "QPRSHVDCPALHGQCQSLPCTYPLVFVGPDPFHCGPYPQFGCCA"
    text = compose_answer("mass?", {"intent": "describe", "entity": {"kind": "protein", "value": sequence,
                                                                     "source": "sequence"}})
    assert text.startswith("The query is a protein sequence of 44 residues, average mass 4,774 Da [Biopython].")
    hit = {**HIT, "similarity": 1.0, "name": "paracetamol", "id": "1983"}
    text = compose_answer("nearest?", {"intent": "similar", "similar": [hit]})
    assert "paracetamol (identical to the query, ChEBI-20 reference)" in text and "[ChEBI-20 CID 1983]" in text


def test_named_structures_are_called_by_their_names_and_two_way_rankings_give_the_difference():
    from biomedgpt.agent.understanding import understand

    question = ("MW difference morphine vs codeine? CN1CC[C@]23c4c5ccc(O)c4O[C@H]2[C@@H](O)C=C[C@H]3[C@H]1C5 and "
                "COc1ccc2C[C@H]3N(C)CC[C@@]45[C@@H](Oc1c24)[C@@H](O)C=C[C@@H]35")
    got = understand(question)
    assert [e.name for e in got.entities] == ["morphine", "codeine"]
    props = [molecule_properties(e.value).model_dump() for e in got.entities]
    state = {"properties": props, "intent": "compare", "attributes": ["molecular_weight"],
             "entities": [e.model_dump() for e in got.entities]}
    assert compose_answer(question, state).startswith(
        "codeine is heavier than morphine: molecular weight codeine (299.37) > morphine (285.34), a difference of "
        "14.03 [RDKit].")


def test_pubchem_counts_are_cited_from_pubchem_when_its_record_has_them():
    aspirin = {**ASPIRIN, "hbond_acceptors": 4, "complexity": 212.0}
    text = compose_answer("According to PubChem, how many H-bond acceptors does aspirin have?",
                          {"compounds": [aspirin], "intent": "attribute", "attributes": ["hbond_acceptors", "complexity"]})
    assert text.startswith("Aspirin has 4 H-bond acceptors [PubChem CID 2244]. The complexity of Aspirin is 212 "
                           "[PubChem CID 2244].")


def test_a_cas_number_is_read_from_pubchems_synonyms():
    aspirin = {**ASPIRIN, "synonyms": ["aspirin", "ACETYLSALICYLIC ACID", "50-78-2", "2-Acetoxybenzoic acid"]}
    text = compose_answer("CAS of aspirin?", {"compounds": [aspirin], "intent": "attribute", "attributes": ["cas_number"]})
    assert text == "The CAS registry number of Aspirin is 50-78-2 [PubChem CID 2244]."


def test_a_count_of_one_element_is_read_from_the_formula_and_stereocentres_are_counted():
    props = [molecule_properties("Cn1cnc2c1c(=O)n(C)c(=O)n2C").model_dump()]
    text = compose_answer("count the nitrogen atoms in it", {"properties": props, "intent": "attribute",
                                                             "attributes": ["heavy_atoms"]})
    assert text == "`Cn1cnc2c1c(=O)n(C)c(=O)n2C` has 4 nitrogen atoms (formula C8H10N4O2) [RDKit]."
    alanine = [molecule_properties("C[C@H](N)C(=O)O").model_dump()]
    assert compose_answer("stereocentres?", {"properties": alanine, "intent": "attribute",
                                              "attributes": ["stereocenters"]}) == "`C[C@H](N)C(=O)O` has 1 stereocentre [RDKit]."
