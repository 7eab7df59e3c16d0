"""The alignment-transfer baseline of protein QA (issue 15): ``pytest tests/training/test_alignment_transfer.py``.

Real phmmer over the shipped Swiss-Prot reference; the training rows are written here, so the test says
exactly which answer must be transferred and when the most frequent answer is the fallback.
"""

from __future__ import annotations

import json
import random

import pytest

from biomedgpt.core.datasets import ProteinQA
from biomedgpt.core.errors import ConfigError
from biomedgpt.model.alignment import shipped_database
from biomedgpt.training.evaluate import AlignmentTransfer, eval_protein_qa

NAMES = "What are the official names of this protein?"


def _row(accession: str, sequence: str, answer: str, question: str = NAMES) -> ProteinQA:
    return ProteinQA(accession, sequence, question, answer, "name")


def test_transfers_the_homologues_answer_and_falls_back_to_the_most_frequent():
    database = shipped_database()
    i = database.ids.index("C0HM47")  # the paralogue of C0HM46 (77 % identity, E-value 3e-31)
    train = [_row("C0HM47", database.sequence(i), "Recommended name: Kunitz-type trypsin inhibitor 1"),
             _row("A", "MKT", "Recommended name: Common answer"), _row("B", "MKV", "Recommended name: Common answer")]
    transfer = AlignmentTransfer(train)
    query = database.sequence(database.ids.index("C0HM46"))
    assert transfer.predict(_row("C0HM46", query, "?")) == "Recommended name: Kunitz-type trypsin inhibitor 1"
    shuffled = list(query)
    random.Random(3).shuffle(shuffled)
    assert transfer.predict(_row("Q0", "".join(shuffled), "?")) == "Recommended name: Common answer"
    assert (transfer.transferred, transfer.fallback) == (1, 1)
    # the query's own entry never answers for it, even on the training side
    assert AlignmentTransfer(train).predict(_row("C0HM47", database.sequence(i), "?")) != train[0].answer


def test_eval_protein_qa_alignment_mode_needs_no_model(tmp_path):
    database = shipped_database()
    data = {acc: {"sequence": database.sequence(database.ids.index(acc)),
                  "data": [[NAMES, f"Recommended name: {database.names[database.ids.index(acc)]}"]]}
            for acc in database.ids[:12]}
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(data))
    result = eval_protein_qa(None, path, retrieval="alignment", out=tmp_path / "preds.tsv", progress=False)
    assert result["n"] == 12 and result["retrieval"] == "alignment"
    assert result["transferred"] + result["most_frequent_fallback"] == 12
    with pytest.raises(ConfigError, match="alignment"):
        eval_protein_qa(None, path, retrieval="nearest", progress=False)
