"""Presets, config JSON round trip, and the exact prompt strings of the released format and Table 1."""

from __future__ import annotations

import pytest

from biomedgpt.model.config import PRESETS, BioMedGPTConfig, get_preset
from biomedgpt.model.conversation import SYSTEM_PROMPT, chat_prompt, training_prompt
from biomedgpt.core.errors import ConfigError


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
    with pytest.raises(ConfigError, match=r"protein\.colour: unknown field \(known: backend, hidden_size"):
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


# A real Jinja chat template rendered by transformers' ``apply_chat_template`` (ChatML, as SmolLM2's).
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture()
def chatml_tokenizer():
    from biomedgpt.model import load_model

    tokenizer = load_model("tiny").tokenizer
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def test_chatml_prompt_puts_tags_context_and_question_on_their_own_lines(chatml_tokenizer):
    from biomedgpt.model.conversation import CHATML_SYSTEM, chatml_prompt

    prompt = chatml_prompt(chatml_tokenizer, "Please describe this molecule.", molecules=1,
                           context="The most similar known molecule (Tanimoto 0.80) is described as:\nAn acid.")
    assert prompt == (
        f"<|im_start|>system\n{CHATML_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\n<molecule><moleculeHere></molecule>\n"
        "The most similar known molecule (Tanimoto 0.80) is described as:\nAn acid.\n"
        "Please describe this molecule.<|im_end|>\n<|im_start|>assistant\n"
    )
    follow_up = chatml_prompt(chatml_tokenizer, "And its charge?", proteins=1, history=[("What is it?", "A kinase. ")])
    assert follow_up.count("<protein><proteinHere></protein>") == 1
    assert "user\n<protein><proteinHere></protein>\nWhat is it?<|im_end|>" in follow_up  # tags in the first turn
    assert "assistant\nA kinase.<|im_end|>\n<|im_start|>user\nAnd its charge?<|im_end|>" in follow_up


def test_task_prompt_dispatches_on_the_format_and_refuses_unknown_ones(chatml_tokenizer):
    from biomedgpt.model.conversation import task_prompt

    assert task_prompt("biomedgpt", "molecule", "Describe it.", context="C.") == training_prompt(
        "molecule", "Describe it.", "", context="C.")[0]
    chat = task_prompt("chatml", "protein", "What does it do?", tokenizer=chatml_tokenizer)
    assert "user\n<protein><proteinHere></protein>\nWhat does it do?<|im_end|>" in chat
    with pytest.raises(ValueError, match="'markdown'"):
        task_prompt("markdown", "molecule", "q")
    chatml_tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        task_prompt("chatml", "molecule", "q", tokenizer=chatml_tokenizer)


def test_prompt_format_and_retrieval_are_checked_and_preset():
    assert get_preset("mini").prompt_format == "chatml" and get_preset("mini").retrieval.k == 1
    assert get_preset("biomedgpt-10b").prompt_format == "biomedgpt"
    base = get_preset("tiny").to_dict()
    with pytest.raises(ConfigError, match="prompt_format"):
        BioMedGPTConfig.from_dict({**base, "prompt_format": "alpaca"})
    with pytest.raises(ConfigError, match=r"retrieval\.k: Input should be greater than or equal to 1"):
        BioMedGPTConfig.from_dict({**base, "retrieval": {"enabled": True, "k": 0}})
    with pytest.raises(ConfigError, match="max_protein_tokens"):
        BioMedGPTConfig.from_dict({**base, "max_protein_tokens": 2048})
    with pytest.raises(ValueError):  # assignments are validated too
        get_preset("tiny").on_too_long = "drop"


def test_configs_saved_with_the_old_retrieval_spelling_still_load():
    """Saved configs of the first release say ``retrieval: true, retrieval_k: 1``; they read as
    ``retrieval.enabled`` / ``retrieval.k``, the spelling of model and training configs alike."""
    from biomedgpt.training.config import load_config

    old = {**get_preset("tiny").to_dict(), "retrieval": True, "retrieval_k": 1}
    config = BioMedGPTConfig.from_dict(old)
    assert (config.retrieval.enabled, config.retrieval.k) == (True, 1)
    assert BioMedGPTConfig.from_json(config.to_json()) == config and "retrieval_k" not in config.to_json()
    only_k = {k: v for k, v in old.items() if k != "retrieval"}
    assert BioMedGPTConfig.from_dict(only_k).retrieval.model_dump() == {"enabled": False, "k": 1}
    align = load_config("align", "mini-cpu")
    assert set(align.retrieval.for_model().model_dump()) == set(config.retrieval.model_dump()) == {"enabled", "k"}


def test_replace_validates_and_copies():
    base = get_preset("tiny")
    changed = base.replace(retrieval={"enabled": True, "k": 2}, trained=True)
    assert changed.retrieval.k == 2 and base.retrieval.k == 3 and changed.trained and not base.trained
    with pytest.raises(ConfigError, match="no field 'colour'"):
        base.replace(colour="red")
    with pytest.raises(ConfigError, match="on_too_long"):
        base.replace(on_too_long="drop")


def test_chatml_model_splices_one_bos_and_builds_its_own_prompt(chatml_tokenizer):
    from biomedgpt.model import load_model

    model = load_model("tiny")
    model.tokenizer.chat_template = CHATML_TEMPLATE
    model.config.prompt_format = "chatml"
    prompt = model.build_prompt("What is it?", molecules=1)
    assert prompt.startswith("<|im_start|>system") and "<molecule><moleculeHere></molecule>" in prompt
    bos = model.tokenizer.bos_token
    ids = model.tokenizer(f"{bos}text", add_special_tokens=False).input_ids
    assert ids[0] == model.tokenizer.bos_token_id and ids[1] != ids[0]
    spliced = model.splice([f"{bos}text"]).inputs_embeds
    assert spliced.shape[1] == len(ids)  # a prompt that opens with BOS does not get a second one
    assert model.splice(["text"]).inputs_embeds.shape[1] == 1 + len(model.tokenizer("text", add_special_tokens=False).input_ids)
