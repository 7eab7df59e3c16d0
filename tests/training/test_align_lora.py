"""LoRA in the alignment stage (issue 15): only the adapters of the LM train, they are checkpointed, resumed,
saved and merged at load, and a later run continues them (or carries them frozen)."""

from __future__ import annotations

import pytest
import torch

from biomedgpt.core.errors import ConfigError
from biomedgpt.model import load_model
from biomedgpt.model.conversation import chat_prompt
from biomedgpt.model.lora import lora_modules, lora_state_dict
from biomedgpt.training.align import setup_align, train_align
from biomedgpt.training.loop import latest_checkpoint
from tests.training.helpers import align_config

LORA = ["lora.enabled=true", "lora.r=4", "lora.alpha=8", "lora.dropout=0.0", "optim.lr=0.05", "optim.warmup_steps=0"]


def _lm_base(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.llm.state_dict().items() if "lora_" not in k}


def test_only_the_adapters_of_the_lm_train_and_the_saved_model_merges_them(tmp_path):
    config = align_config(tmp_path / "run", *LORA, "max_steps=3", "checkpoint_every=3")
    trainer, _, trainable = setup_align(config)
    model = trainer.inner_model
    adapted = lora_modules(model.llm)
    assert len(adapted) == 2 * 7  # the tiny LM's 2 layers x 7 projections
    assert trainable["llm"] == sum(4 * (m.in_features + m.out_features) for m in adapted.values())
    base = _lm_base(model)

    metrics = train_align(config)  # the same run, through the whole driver: train, dev loss, save
    assert metrics["trainable_parameters"]["llm"] == trainable["llm"]
    resumed = setup_align(config)[0]
    assert resumed.fit()["resumed_from"].endswith("step-000003")  # a finished run: no more steps, its weights
    trained = resumed.inner_model
    assert all(torch.equal(v, trained.llm.state_dict()[k]) for k, v in base.items())  # the LM itself is frozen
    adapters = lora_state_dict(trained.llm)
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapters.items())  # B left zero
    saved = torch.load(latest_checkpoint(tmp_path / "run") / "state.pt", weights_only=True)["model"]
    llm_keys = {k for k in saved if k.startswith("llm.")}
    assert llm_keys and all(".lora_A." in k or ".lora_B." in k for k in llm_keys)  # adapters only, not the LM

    folder = tmp_path / "run" / "model"
    assert (folder / "lora.safetensors").is_file()
    merged = load_model(str(folder))
    assert merged.config.lora.r == 4 and not lora_modules(merged.llm)
    trained.eval()
    prompt = chat_prompt("What is it?", molecules=1)
    with torch.no_grad():
        assert torch.allclose(merged(prompt, "CCO").logits, trained(prompt, "CCO").logits, atol=1e-4)


def test_a_killed_lora_run_resumes_exactly(tmp_path):
    steps = [*LORA, "max_steps=4", "checkpoint_every=2"]  # killed at 3, between checkpoints
    straight = setup_align(align_config(tmp_path / "straight", *steps))[0]
    straight.fit()

    class Killed(Exception):
        pass

    def kill(info):
        if info.step == 3:
            raise Killed

    killed = setup_align(align_config(tmp_path / "killed", *steps), on_step=kill)[0]
    with pytest.raises(Killed):
        killed.fit()
    resumed = setup_align(align_config(tmp_path / "killed", *steps))[0]
    assert resumed.fit()["resumed_from"].endswith("step-000002")
    expected, found = lora_state_dict(straight.inner_model.llm), lora_state_dict(resumed.inner_model.llm)
    assert all(torch.equal(expected[k], found[k]) for k in expected)


def test_a_later_run_continues_the_saved_adapters_or_carries_them_frozen(tmp_path):
    first = align_config(tmp_path / "first", *LORA, "max_steps=2")
    train_align(first)
    saved_model = tmp_path / "first" / "model"
    saved = lora_state_dict(load_model(str(saved_model), merge_lora=False).llm)

    again = align_config(tmp_path / "second", *LORA, f"model={saved_model}", "max_steps=2", "seed=1")
    trainer, _, trainable = setup_align(again)
    start = lora_state_dict(trainer.inner_model.llm)
    assert trainable["llm"] > 0 and all(torch.equal(saved[k], start[k]) for k in saved)  # continued, not fresh

    with pytest.raises(ConfigError, match=r"r: saved 4, config 8"):
        setup_align(align_config(tmp_path / "third", *LORA, f"model={saved_model}", "lora.r=8"))

    frozen = align_config(tmp_path / "frozen", f"model={saved_model}", "max_steps=2", "optim.lr=0.05")
    trainer, _, trainable = setup_align(frozen)
    assert trainable["llm"] == 0 and trainer.inner_model.config.lora.r == 4
    train_align(frozen)
    carried = lora_state_dict(load_model(str(tmp_path / "frozen" / "model"), merge_lora=False).llm)
    assert all(torch.equal(saved[k], carried[k]) for k in saved)  # saved again unchanged
