"""The shipped BioMedGPT-mini weights (issue 6): ``pytest tests/model/test_shipped_mini.py``.

Why these tests: the offline default must be the trained model that the model card describes, byte for
byte, and the tool path must answer with it reproducibly. What the shipped retrieval reference indexes
hold (every ChEBI-20 row, which evaluation holds out by itself; no protein of the 20 % test split) is tested
once, where the indexes are built: ``tests/model/test_retrieval.py``
(``test_shipped_molecule_reference_holds_every_chebi20_row``, ``test_shipped_protein_index_holds_only_the_train_split``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from biomedgpt.model.weights import mini_weights_dir, shipped_mini_available, weights_report

CARD = Path(__file__).resolve().parents[2] / "model" / "cards" / "mini.md"
SHIPPED_FILES = ("config.json", "model.safetensors")
CAFFEINE = "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"
UBIQUITIN = "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _card_checksums() -> dict[str, str]:
    """``{file name: sha256}`` from the card's rows that name a shipped weights file and a sha256."""
    found = {}
    for line in CARD.read_text().splitlines():
        digest = re.search(r"\b[0-9a-f]{64}\b", line)
        name = re.search(r"model/weights/mini/([\w.\-]+)", line)
        if digest and name:
            found[name.group(1)] = digest.group(0)
    return found


def test_weights_ship_as_trained_with_retrieval_and_stay_small():
    assert shipped_mini_available(), f"no shipped weights in {mini_weights_dir()}"
    manifest = json.loads((mini_weights_dir() / "config.json").read_text())
    config = manifest["config"]
    assert manifest["lm"] == "source" and config["lm"]["source"] == "smollm2"  # the LM is referenced, not shipped
    assert config["trained"] is True and config["retrieval"] == {"enabled": True, "k": 1}  # how it was trained (the card)
    assert config["prompt_format"] == "chatml"
    data_dir = mini_weights_dir().parents[1] / "data"
    total = sum(p.stat().st_size for p in mini_weights_dir().iterdir()) + sum(p.stat().st_size for p in data_dir.iterdir())
    assert total <= 60 * 1024 * 1024


def test_checksums_match_the_model_card_and_doctor():
    card = _card_checksums()
    for name in SHIPPED_FILES:
        assert name in card, f"model/cards/mini.md lists no sha256 for model/weights/mini/{name}"
        assert _sha256(mini_weights_dir() / name) == card[name], f"{name} differs from the model card"
    row = next(r for r in weights_report() if r["name"] == "mini encoders + adaptors")
    assert row["found"] and row["trained"] and row["sha256"] == card["model.safetensors"]


@pytest.fixture(scope="module")
def mini():
    from biomedgpt.model import load_model

    return load_model("mini")


@pytest.mark.slow
def test_load_model_mini_uses_the_shipped_weights(mini):
    from safetensors.torch import load_file

    assert mini.config.trained is True and mini.config.retrieval.enabled is True
    shipped = load_file(str(mini_weights_dir() / "model.safetensors"))
    state = mini.state_dict()
    for key in ("proj_mol.weight", "proj_prot.weight"):
        assert key in shipped
        assert (state[key].float() - shipped[key].float()).abs().max() == 0


@pytest.mark.slow
def test_fixed_molecule_and_protein_answers_are_nonempty_and_deterministic(mini):
    from biomedgpt.tools.biomedgpt_tool import AnswerGeneration, describe_molecule, describe_protein

    greedy = AnswerGeneration(max_new_tokens=24)
    first = describe_molecule(CAFFEINE, model=mini, generation=greedy)
    again = describe_molecule(CAFFEINE, model=mini, generation=greedy)
    assert first.text.strip() and first.text == again.text
    assert first.text.startswith("The molecule is")  # a trained model answers in ChEBI's style
    assert first.trained and "untrained" not in first.note
    assert len(first.inputs["retrieved"]) == mini.config.retrieval.k == 1  # trained with the nearest neighbour in the prompt
    protein = describe_protein(UBIQUITIN, model=mini, generation=greedy)
    assert protein.text.strip() and protein.text == describe_protein(UBIQUITIN, model=mini, generation=greedy).text
    assert protein.trained and protein.inputs["retrieved"]


@pytest.mark.slow
def test_ask_brings_the_nearest_reference_as_in_training(mini):
    context = mini.retrieval_context(smiles=CAFFEINE)
    assert context.startswith("The most similar known molecule (Tanimoto ") and context.count("\n") == 1
    question = "Please describe this molecule."
    answer = mini.ask(question, smiles=CAFFEINE, max_new_tokens=16)
    assert answer == mini.ask(question, smiles=CAFFEINE, context=context, max_new_tokens=16)
    assert answer != mini.ask(question, smiles=CAFFEINE, retrieval=False, max_new_tokens=16)
