"""Grounding checks of a chat model's answer (agent/grounding.py): which sentences state facts, and whether a
cited record holds every number they give."""

from __future__ import annotations

import pytest

from biomedgpt.agent.grounding import (
    Evidence,
    check_sentence,
    evidence_from_state,
    evidence_from_text,
    numbers_in,
    split_sentences,
    states_fact,
    unchecked_note,
    ungrounded_sentences,
)

ASPIRIN = Evidence({"180.159", "2244", "1.2", "63.6"}, {"aspirin", "acetylsalicylic acid"})
EVIDENCE = {"PubChem CID 2244": ASPIRIN, "RDKit": Evidence({"1.31", "0.93", "86943"})}


@pytest.mark.parametrize("sentence, reason", [
    ("Aspirin has a molecular weight of 180.16 g/mol [PubChem CID 2244].", None),
    ("It weighs about 180 g/mol [PubChem CID 2244].", None),  # rounded to the digits written
    ("It weighs 180.2 g/mol [PubChem CID 2244].", None),
    ("It weighs 180.3 g/mol [PubChem CID 2244].", "180.3 is not a value of [PubChem CID 2244]"),
    ("Its logP is 1.6180339887 [RDKit].", "1.6180339887 is not a value of [RDKit]"),
    ("The mass is 86,943 Da [RDKit].", None),
    ("The similarity is 93% [RDKit].", None),  # a percentage of a fraction
    ("Aspirin inhibits COX-2.", "cites no record"),
    ("It weighs 180 g/mol [PubChem CID 999].", "cites PubChem CID 999, which no tool returned"),
    ("The capital of France is Paris.", "cites no record"),  # names inside a sentence
    ("Its formula is C9H8O4.", "cites no record"),
    ("I'm sorry, I can only help with biomedical questions.", None),  # about the conversation: no fact
    ("Hello! What would you like to know?", None),
    ("Which of them do you mean?", None),
    ("Sources: [PubChem CID 2244]", None),
])
def test_sentences(sentence, reason):
    assert check_sentence(sentence, EVIDENCE, ["aspirin"]) == reason


def test_states_fact_needs_a_number_a_name_an_identifier_or_a_property():
    assert states_fact("Aspirin is great.", ["aspirin"])  # a name the conversation holds
    assert states_fact("It is soluble in water.")  # a property word
    assert states_fact("The key is BSYNRYMUTXBXSQ-UHFFFAOYSA-N.")
    assert states_fact("Its SMILES is `CC(=O)Oc1ccccc1C(=O)O`.")
    assert not states_fact("That is a good question.")
    assert not states_fact("You can ask me about molecules or proteins.")


def test_numbers_are_read_as_written_outside_citations_and_code():
    assert numbers_in("logP -0.5, COX-2, C9H8O4, 86,943 Da, c1ccccc1 in 2019 [PMID 123] `CC1` 180.16.") == [
        "-0.5", "86,943", "2019", "180.16"]


def test_sentences_split_and_a_trailing_citation_joins_its_sentence():
    text = ("Aspirin weighs 180.16 g/mol. [PubChem CID 2244]\n- TPSA 63.6 Å² [PubChem CID 2244].\n"
            "| a | b |\n|---|---|\n| aspirin | 1.2 [PubChem CID 2244] |")
    assert split_sentences(text) == ["Aspirin weighs 180.16 g/mol. [PubChem CID 2244]",
                                     "- TPSA 63.6 Å² [PubChem CID 2244].", "| a | b |",
                                     "| aspirin | 1.2 [PubChem CID 2244] |"]
    assert ungrounded_sentences(text, EVIDENCE) == []


def test_the_note_quotes_the_unchecked_claims_on_one_line():
    text = ("Aspirin weighs 180.16 g/mol [PubChem CID 2244]. Its logP is 1.618 [RDKit]. The capital of France is "
            "Paris. It is an NSAID. It was first made in 1897.")
    found = ungrounded_sentences(text, EVIDENCE, ["aspirin"])
    assert found == ["Its logP is 1.618 [RDKit].", "The capital of France is Paris.", "It is an NSAID.",
                     "It was first made in 1897."]
    note = unchecked_note(found)
    assert "\n" not in note and note.startswith("**Unchecked:** 4 claims")
    assert "\u201cIts logP is 1.618 [RDKit].\u201d" in note and "and 1 more" in note


def test_evidence_comes_from_the_typed_records_and_from_a_composed_text():
    state = {"compounds": [{"cid": 2244, "title": "aspirin", "molecular_weight": 180.159, "xlogp": 1.2,
                            "synonyms": ["acetylsalicylic acid"]}],
             "properties": [], "proteins": [{"accession": "P05067", "protein_name": "Amyloid-beta precursor protein",
                                             "mass": 86943, "length": 770, "gene_names": ["APP"]}]}
    found = evidence_from_state(state)
    assert set(found) == {"PubChem CID 2244", "UniProt P05067"}
    assert {"180.159", "1.2", "2244"} <= found["PubChem CID 2244"].numbers
    assert "acetylsalicylic acid" in found["PubChem CID 2244"].names and "APP" in found["UniProt P05067"].names
    assert check_sentence("APP has 770 amino acids and a mass of 86,943 Da [UniProt P05067].", found) is None
    derived = evidence_from_text("The Tanimoto similarity of a and b is 0.31 (Morgan, radius 2) [RDKit].")
    assert {"0.31", "2"} <= derived["RDKit"].numbers
    assert Evidence.from_dict(found["UniProt P05067"].to_dict()) == found["UniProt P05067"]


def test_a_lead_that_points_at_the_records_states_no_fact_unless_it_holds_a_number():
    assert not states_fact("Here is what the records say about the logP of caffeine.")
    assert not states_fact("Here's what the literature says about aspirin and colorectal cancer.")
    assert states_fact("Here is what the records say: the logP of caffeine is -0.07.")

