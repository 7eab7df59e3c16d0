"""Training and serving ask the same thing: for one record, ``train align``'s prompt equals the prompt of
``eval``, of the BioMedGPT tool and of ``BioMedGPT.ask`` for the same structure and question
(all built by ``model/prompts.structure_prompt``, with one exclusion rule).

Serving draws its references from the shipped index; here that index is replaced by the index of the
training rows, so that all four see the same references and the comparison is exact.
"""

from __future__ import annotations

import pytest

from biomedgpt.model import load_model, prompts
from biomedgpt.model.config import RetrievalConfig
from biomedgpt.model.conversation import CAPTION_QUESTION
from biomedgpt.model.retrieval import MoleculeIndex, ProteinIndex
from biomedgpt.tools.biomedgpt_tool import AnswerGeneration, describe_molecule, describe_protein
from biomedgpt.training.eval_structures import _structure_batch
from biomedgpt.training.align import build_align_data
from biomedgpt.training.data import molecule_split, protein_references, protein_split
from tests.model.test_config_prompts import CHATML_TEMPLATE
from tests.training.helpers import align_config


def _served_prompts(model, monkeypatch):
    """Replace ``model.generate`` by a recorder of the prompts it is given."""
    sent: list[str] = []

    def record(prompts, molecules=None, proteins=None, **kwargs):
        batch = [prompts] if isinstance(prompts, str) else list(prompts)
        sent.extend(batch)
        return ["answer"] * len(batch)

    monkeypatch.setattr(model, "generate", record)
    return sent


@pytest.mark.parametrize("prompt_format", ["chatml", "biomedgpt"])
def test_training_eval_tool_and_ask_build_the_same_prompt(prompt_format, tmp_path, monkeypatch):
    model = load_model("tiny")
    model.tokenizer.chat_template = CHATML_TEMPLATE
    model.config.prompt_format = prompt_format
    model.config.retrieval = RetrievalConfig(enabled=True, k=2)
    config = align_config(tmp_path, "retrieval.enabled=true", "retrieval.k=2", "data.molecule_dev_holdout=0")
    data = build_align_data(config, prompt_format, model.tokenizer)
    mol_index = MoleculeIndex.build([(r.cid, r.smiles, r.description) for r in molecule_split(config)[0]])
    prot_train = protein_split(config)[0]
    prot_index = ProteinIndex.build(protein_references(prot_train, config.retrieval.protein_reference))
    monkeypatch.setattr(prompts, "default_molecule_index", lambda: mol_index)
    monkeypatch.setattr(prompts, "default_protein_index", lambda: prot_index)
    sent = _served_prompts(model, monkeypatch)
    short = AnswerGeneration(max_new_tokens=1)

    molecule = next(e for e in data.train if e.kind == "molecule")
    protein = next(e for e in data.train if e.kind == "protein")
    assert "most similar known molecule" not in molecule.prompt and "Similar known molecules" in molecule.prompt
    assert "Similar known proteins" in protein.prompt

    _structure_batch(model, "molecule", [molecule.smiles], [molecule.key], [CAPTION_QUESTION], "on",
                       prompts.default_index("molecule"), 8)
    _structure_batch(model, "protein", [protein.sequence], [protein.key], [_question(prot_train, protein)], "on",
                       prompts.default_index("protein"), 8)
    evaluated = sent[-2:]
    assert evaluated == [molecule.prompt, protein.prompt]  # evaluation asks what training taught

    tool = [describe_molecule(molecule.smiles, CAPTION_QUESTION, model=model, generation=short).prompt,
            describe_protein(protein.sequence, _question(prot_train, protein), model=model, generation=short).prompt]
    model.ask(CAPTION_QUESTION, smiles=molecule.smiles)
    model.ask(_question(prot_train, protein), sequence=protein.sequence)
    assert sent[-4:-2] == tool and sent[-2:] == tool  # the tool sends what it reports, which is what ask sends
    if prompt_format == "chatml":  # the mini model's format: serving asks exactly what training taught
        assert tool == [molecule.prompt, protein.prompt]


def _question(records, example) -> str:
    return next(r.question for r in records if r.accession == example.key and r.answer.strip() == example.answer)
