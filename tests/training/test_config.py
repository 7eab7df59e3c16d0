"""Configs: every bundled preset loads and validates; --set overrides work; mistakes are clear errors."""

from __future__ import annotations

import pytest

from biomedgpt.core.errors import ConfigError
from biomedgpt.training.config import (
    KINDS,
    PRESETS,
    AlignConfig,
    LMConfig,
    QAConfig,
    build_config,
    dump_config,
    load_config,
    parse_override,
)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", PRESETS)
def test_every_bundled_preset_loads(kind, name):
    config = load_config(kind, name)
    assert config.kind == kind and config.name == name
    assert config.global_batch_size % config.micro_batch_size == 0


def test_paper_presets_hold_the_papers_settings():
    lm = load_config("lm", "paper-10b")
    assert isinstance(lm, LMConfig)
    assert (lm.optim.lr, lm.global_batch_size, lm.data.context_length) == (2e-5, 192, 2048)
    assert (lm.strategy, lm.precision, lm.gradient_checkpointing) == ("fsdp", "bf16", True)
    align = load_config("align", "paper-10b")
    assert isinstance(align, AlignConfig)
    assert (align.epochs, align.optim.lr, align.global_batch_size) == (50, 7e-5, 24)
    qa = load_config("qa", "paper-10b")
    assert isinstance(qa, QAConfig)
    assert (qa.epochs, qa.optim.lr, qa.global_batch_size) == (3, 2e-5, 512)


def test_mini_cpu_align_is_the_embedded_recipe():
    config = load_config("align", "mini-cpu")
    assert config.model == "mini" and config.retrieval.enabled
    assert config.data.molecule_dev_holdout == 300 and config.data.split_seed == 0
    assert config.data.protein_train_fraction == 0.8
    assert [p.name for p in config.data.molecule_paths] == ["validation.txt"]
    assert config.data.eval_slice.path.name == "test.txt" and config.data.eval_slice.rows is None  # all test rows out
    assert not config.lora.enabled


def test_mini_lora_recipe_trains_every_molecule_but_the_evaluation_slice():
    config = load_config("align", "mini-lora-cpu")
    assert config.model == "mini" and config.retrieval.enabled and config.prompt_format == "chatml"
    assert [p.name for p in config.data.molecule_paths] == ["validation.txt", "test.txt"]
    assert config.data.eval_slice.path.name == "test.txt" and config.data.eval_slice.rows == 500
    assert config.lora.enabled and config.lora.target_modules == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model_lora = config.lora.for_model()
    assert not hasattr(model_lora, "enabled") and model_lora.scaling == config.lora.alpha / config.lora.r


def test_the_older_data_spelling_still_loads():
    old = build_config("align", {"data": {"molecule_path": "v.txt", "molecule_exclude_path": "t.txt"}})
    assert [str(p) for p in old.data.molecule_paths] == ["v.txt"]
    assert str(old.data.eval_slice.path) == "t.txt" and old.data.eval_slice.rows is None
    assert build_config("align", {"data": {"molecule_path": None}}).data.molecule_paths == []
    with pytest.raises(ConfigError, match="not both"):
        build_config("align", {"data": {"molecule_path": "v.txt", "molecule_paths": ["w.txt"]}})
    with pytest.raises(ConfigError, match=r"lora.r"):
        build_config("align", {"lora": {"enabled": True, "r": 0}})


def test_overrides_are_typed_and_nested(tmp_path):
    config = load_config(
        "lm",
        "tiny",
        ["optim.lr=3e-4", "max_steps=7", "gradient_checkpointing=true", f"data.paths=[{tmp_path}/a.txt, b.jsonl]", "max_steps=8"],
    )
    assert config.optim.lr == pytest.approx(3e-4)
    assert config.max_steps == 8  # the last --set wins
    assert config.gradient_checkpointing is True
    assert [p.name for p in config.data.paths] == ["a.txt", "b.jsonl"]
    assert load_config("lm", "tiny", ["max_steps=null"]).max_steps is None


def test_yaml_file_round_trips_through_dump(tmp_path):
    original = load_config("qa", "tiny", ["optim.lr=0.01", "eval_methods=[generate]"])
    path = tmp_path / "mine.yaml"
    path.write_text(dump_config(original))
    again = load_config("qa", path)
    assert again == original


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["optim.lerning_rate=1"], "optim.lerning_rate"),
        (["optim.lr=-1"], "optim.lr"),
        (["precision=fp8"], "precision"),
        (["max_steps"], "key=value"),
        (["optim.lr.x=1"], "optim.lr"),
        (["data.context_length=[1"], "not valid YAML"),
    ],
)
def test_bad_overrides_name_the_key(overrides, needle):
    with pytest.raises(ConfigError) as caught:
        load_config("lm", "tiny", overrides)
    assert needle in str(caught.value)


def test_unknown_name_lists_the_presets():
    with pytest.raises(ConfigError) as caught:
        load_config("align", "huge")
    assert "mini-cpu" in str(caught.value) and "huge" in str(caught.value)


def test_a_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "lm.yaml"
    path.write_text(dump_config(load_config("lm", "tiny")))
    with pytest.raises(ConfigError, match="'lm' config, not 'qa'"):
        load_config("qa", path)


def test_grad_accum_is_derived_and_checked():
    config = load_config("lm", "tiny", ["micro_batch_size=2", "global_batch_size=8"])
    assert config.grad_accum(1) == 4 and config.grad_accum(2) == 2 and config.grad_accum(4) == 1
    with pytest.raises(ConfigError, match="not a multiple"):
        config.grad_accum(3)


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=1e-3") == ("a.b", 1e-3)
    assert parse_override("flag=false") == ("flag", False)
    assert parse_override("name=mini-cpu") == ("name", "mini-cpu")
