"""Presets, config JSON round trip, and the exact prompt strings of the released format and Table 1."""

from __future__ import annotations

import pytest

from biomedgpt.model.config import PRESETS, BioMedGPTConfig, get_preset
from biomedgpt.model.conversation import SYSTEM_PROMPT, chat_prompt, training_prompt
from biomedgpt.model.errors import ConfigError


def test_presets_have_the_released_shapes():
    big = get_preset("biomedgpt-10b")
    assert (big.molecule.num_layer, big.molecule.emb_dim) == (5, 300)
    assert (big.protein.hidden_size, big.protein.num_layers, big.protein.num_heads) == (2560, 36, 40)
    assert (big.lm.hidden_size, big.lm.vocab_size) == (4096, 32001)
    mini = get_preset("mini")
    assert (mini.molecule.num_layer, mini.molecule.emb_dim) == (5, 300)
    assert (mini.protein.hidden_size, mini.protein.num_layers, mini.protein.num_heads) == (320, 6, 20)
    assert mini.lm.source == "smollm2" and mini.trained is False
    assert get_preset("tiny").lm.source == "tiny"


def test_get_preset_returns_a_copy_and_names_known_presets_on_error():
    copy = get_preset("mini")
    copy.protein.hidden_size = 1
    assert PRESETS["mini"].protein.hidden_size == 320
    with pytest.raises(ConfigError, match="unknown model preset 'nope'.*mini.*tiny"):
        get_preset("nope")


def test_config_json_round_trip_and_unknown_fields():
    config = get_preset("tiny").replace(trained=True, on_too_long="error")
    again = BioMedGPTConfig.from_json(config.to_json())
    assert again == config
    data = config.to_dict()
    data["protein"]["colour"] = "red"
    with pytest.raises(ConfigError, match="protein: unknown field.*colour"):
        BioMedGPTConfig.from_dict(data)
    with pytest.raises(ConfigError, match="backend"):
        BioMedGPTConfig.from_dict({**config.to_dict(), "protein": {"backend": "jax"}})


def test_released_chat_format_single_turn():
    prompt = chat_prompt("What is it?", molecules=1)
    assert prompt == (
        "You are working as an excellent assistant in chemistry and molecule discovery. Below a human expert "
        "gives the representation of a molecule or a protein. Answer questions about it. "
        "### Human: <molecule><moleculeHere></molecule> What is it? ### Assistant: "
    )
    assert chat_prompt("Q?", proteins=1) == SYSTEM_PROMPT + "### Human: <protein><proteinHere></protein> Q? ### Assistant: "


def test_released_chat_format_multi_turn_with_context_and_several_structures():
    prompt = chat_prompt("And its weight?", molecules=2, proteins=1, history=[("What is it?", "Aspirin.")],
                         context="Reference: an analgesic.")
    assert prompt == (
        SYSTEM_PROMPT
        + "### Human: <molecule><moleculeHere></molecule> <molecule><moleculeHere></molecule> "
        "<protein><proteinHere></protein> What is it? ### Assistant: Aspirin. "
        "### Human: Reference: an analgesic. And its weight? ### Assistant: "
    )


def test_table1_training_templates():
    prompt, answer = training_prompt("molecule", "Describe this molecule.", "It is aspirin.")
    assert prompt == (
        "You are working as an excellent assistant in chemistry and molecule discovery. Below a human gives the "
        "representation of a molecule. Answer a question about it. ###Human: <molecule><moleculeHere></molecule> "
        "Describe this molecule. ###Assistant: "
    )
    assert answer == "It is aspirin."
    prompt, _ = training_prompt("protein", "What does it do", "Binds ATP.", context="Similar: a kinase.")
    assert prompt == (
        "You are working as an excellent assistant in biology. Below a human gives the representation of a "
        "protein. Answer a question about it. ###Human: <protein><proteinHere></protein> Similar: a kinase. "
        "What does it do. ###Assistant: "
    )
    with pytest.raises(ValueError, match="'dna'"):
        training_prompt("dna", "x", "y")
