"""The one structure prompt (``model/prompts.py``): the exclusion rule, the two templates, and ``ask``'s use of it."""

from __future__ import annotations

import pytest

from biomedgpt.core.errors import InputError
from biomedgpt.model import prompts
from biomedgpt.model.config import RetrievalConfig
from biomedgpt.model.conversation import chat_prompt, training_prompt
from biomedgpt.model.prompts import retrieval_context, retrieve, structure_prompt
from biomedgpt.model.retrieval import MoleculeIndex
from tests.model.test_config_prompts import CHATML_TEMPLATE

MOLECULES = [
    ("1", "CCO", "Ethanol, a primary alcohol."),
    ("2", "CCCO", "Propan-1-ol, a primary alcohol."),
    ("3", "CCCCO", "Butan-1-ol."),
    ("4", "OCC", "Ethanol under another id."),
]


@pytest.fixture(scope="module")
def index() -> MoleculeIndex:
    return MoleculeIndex.build(MOLECULES)


def test_one_exclusion_rule_self_query_id_and_explicit_ids(index):
    # the query's own molecule (by InChIKey: ids 1 and 4 are both ethanol) never comes back
    assert [h.id for h in retrieve("molecule", "CCO", 3, index=index)] == ["2", "3"]
    # the query's own id and any explicit id are left out too
    assert [h.id for h in retrieve("molecule", "CCCCCO", 4, index=index, query_id="3")] == ["2", "1", "4"]
    assert [h.id for h in retrieve("molecule", "CCCCCO", 4, index=index, query_id="3", exclude_ids={"2"})] == ["1", "4"]
    with pytest.raises(InputError, match="'dna'"):
        retrieve("dna", "ACGT", 1, index=index)


def test_held_out_rows_leave_the_reference_under_every_id_of_their_molecule(index):
    from biomedgpt.model.retrieval import ProteinIndex

    # evaluating ethanol (id 1) and propanol (id 2): ethanol's other id (4) leaves too, and a SMILES RDKit
    # cannot read still holds out its own id
    held = prompts.held_out_ids("molecule", [("1", "CCO"), ("2", "CCCO"), ("9", "C1CC")], index=index)
    assert held == {"1", "2", "4", "9"}
    assert [h.id for h in retrieve("molecule", "CCCCO", 3, index=index, exclude_ids=held)] == []  # butanol: itself
    assert [h.id for h in retrieve("molecule", "CCCCCO", 3, index=index, exclude_ids=held)] == ["3"]
    proteins = ProteinIndex.build([("P1", "MKVLA", "one"), ("P2", "MKVLA", "the same chain"), ("P3", "GGGSW", "x")])
    assert prompts.held_out_ids("protein", [("Q9", "mkvla"), ("Q8", "not a protein!")], index=proteins) == {
        "Q9", "Q8", "P1", "P2"}


def test_context_block_and_templates(index):
    built = structure_prompt("biomedgpt", "molecule", "Describe it.", structure="CCO", k=1, index=index)
    assert [h.id for h in built.hits] == ["2"]
    assert built.context == retrieval_context("molecule", "CCO", 1, index=index)[0]
    assert built.context.startswith("The most similar known molecule (Tanimoto ")
    assert built.text == training_prompt("molecule", "Describe it.", "", context=built.context)[0]  # Table 1
    chat = structure_prompt("biomedgpt", "molecule", "Describe it.", context=built.context, chat=True,
                            history=[("Hi?", "Hello.")])
    assert chat.text == chat_prompt("Describe it.", molecules=1, context=built.context, history=[("Hi?", "Hello.")])
    assert structure_prompt("biomedgpt", "protein", "What is it?").context is None  # k=0: no block


def test_misuse_is_an_input_error(index):
    with pytest.raises(InputError, match="not both"):
        structure_prompt("biomedgpt", "molecule", "q", structure="CCO", k=1, index=index, context="given")
    with pytest.raises(InputError, match="structure="):
        structure_prompt("biomedgpt", "molecule", "q", k=1, index=index)
    with pytest.raises(InputError, match="chat=True"):
        structure_prompt("biomedgpt", "molecule", "q", history=[("a", "b")])
    with pytest.raises(InputError, match="C1CC"):
        structure_prompt("biomedgpt", "molecule", "q", structure="C1CC", k=1, index=index)


def test_in_chatml_the_training_prompt_is_the_chat_prompt(monkeypatch, index):
    """The mini model's format: what alignment fits is exactly what ``ask`` sends (no history)."""
    from biomedgpt.model import load_model

    model = load_model("tiny")
    model.tokenizer.chat_template = CHATML_TEMPLATE
    model.config.prompt_format = "chatml"
    model.config.retrieval = RetrievalConfig(enabled=True, k=2)
    monkeypatch.setattr(prompts, "default_molecule_index", lambda: index)
    task = structure_prompt("chatml", "molecule", "Describe it.", structure="CCCO", k=2, index=index,
                            tokenizer=model.tokenizer)
    chat = structure_prompt("chatml", "molecule", "Describe it.", structure="CCCO", k=2, index=index,
                            tokenizer=model.tokenizer, chat=True)
    assert task.text == chat.text and "Similar known molecules" in task.text
    sent = []
    monkeypatch.setattr(model, "generate", lambda prompt, *args, **kwargs: sent.append(prompt) or ["ok"])
    assert model.ask("Describe it.", smiles="CCCO") == "ok"
    assert sent == [task.text]
    assert model.retrieval_context(smiles="CCCO") == task.context
    model.ask("Describe it.", smiles="CCCO", retrieval=False)
    assert "Similar known" not in sent[-1] and sent[-1] == model.build_prompt("Describe it.", molecules=1)
    model.ask("Describe it.", smiles="CCCO", context="Given text.")
    assert sent[-1] == model.build_prompt("Describe it.", molecules=1, context="Given text.")
