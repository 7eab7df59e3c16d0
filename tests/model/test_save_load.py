"""Our own format (safetensors + JSON config) round trip, load_model names, and checkpoint errors."""

from __future__ import annotations

import json

import pytest
import torch

from biomedgpt.model.conversation import chat_prompt
from biomedgpt.core.errors import CheckpointError, ConfigError

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


@torch.no_grad()
def test_save_load_round_trip_is_exact(tiny_model, tmp_path):
    from biomedgpt.model import load_model, save_pretrained

    with torch.no_grad():
        tiny_model.proj_mol.weight.add_(0.5)  # a change a fresh build would not reproduce
    folder = save_pretrained(tiny_model, tmp_path / "saved")
    manifest = json.loads((folder / "config.json").read_text())
    assert manifest["format"] == "biomedgpt" and manifest["lm"] == "llm"  # the random tiny LM is stored
    assert (folder / "model.safetensors").is_file() and (folder / "llm" / "config.json").is_file()
    again = load_model(str(folder))
    assert again.config == tiny_model.config
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    prompt = chat_prompt("What is it?", molecules=1)
    assert torch.equal(again(prompt, ASPIRIN).logits, tiny_model(prompt, ASPIRIN).logits)
    # re-saving over an existing folder replaces it atomically and leaves no temporary folders behind
    save_pretrained(again, folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_encoders_only_save_references_the_lm(tiny_model, tmp_path):
    from biomedgpt.model import load_pretrained, save_pretrained

    folder = save_pretrained(tiny_model, tmp_path / "adaptors", include_lm=False)
    assert not (folder / "llm").exists()
    keys = set(__import__("safetensors.torch", fromlist=["load_file"]).load_file(str(folder / "model.safetensors")))
    assert keys and not any(k.startswith("llm.") for k in keys)
    assert any(k.startswith("proj_mol.") for k in keys) and any(k.startswith("prot_structure_encoder.") for k in keys)
    again = load_pretrained(folder)  # the tiny LM is rebuilt from its source (fixed seed)
    assert torch.equal(again.proj_mol.weight, tiny_model.proj_mol.weight)


def test_tampered_or_missing_checkpoints_give_clear_errors(tiny_model, tmp_path):
    from safetensors.torch import load_file, save_file

    from biomedgpt.model import load_model, load_pretrained, save_pretrained

    folder = save_pretrained(tiny_model, tmp_path / "m", include_lm=False)
    state = load_file(str(folder / "model.safetensors"))
    state["proj_mol.surprise"] = torch.zeros(1)
    del state["proj_prot.weight"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys: proj_prot.weight; unexpected keys: proj_mol.surprise"):
        load_pretrained(folder)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown model 'no-such-model'.*mini, tiny"):
        load_model("no-such-model")
    with pytest.raises(ConfigError, match="load_official"):
        load_model("biomedgpt-10b")


def test_fresh_tiny_models_are_reproducible_and_untrained():
    from biomedgpt.model import load_model

    a, b = load_model("tiny"), load_model("tiny")
    assert a.config.trained is False
    assert torch.equal(a.proj_prot.weight, b.proj_prot.weight)
    assert torch.equal(a.mol_structure_encoder.x_embedding1.weight, b.mol_structure_encoder.x_embedding1.weight)


def test_weights_report_lists_the_three_weight_sets():
    from biomedgpt.model import weights_report

    rows = weights_report(with_hashes=False)
    assert [set(r) for r in rows] == [{"name", "path", "found", "trained", "sha256", "files", "note"}] * 3
    gguf, _cache, mini = rows
    assert gguf["found"] is True and gguf["path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert mini["found"] is True and mini["trained"] is True and mini["path"].endswith("weights/mini")
    assert "model/cards/mini.md" in mini["note"]


def test_a_llama_folder_loads_alone_as_a_text_chat_model(tiny_model, tmp_path):
    from biomedgpt.model.lm import load_text_chat_model

    tiny_model.llm.save_pretrained(tmp_path / "lm")
    tiny_model.tokenizer.save_pretrained(tmp_path / "lm")
    chat = load_text_chat_model(tmp_path / "lm")
    assert chat.llm.config.hidden_size == tiny_model.llm.config.hidden_size
    assert isinstance(chat.ask("What is aspirin?", max_new_tokens=3), str)
    with pytest.raises(ConfigError, match="not 'smollm2', 'tiny' or a folder"):
        load_text_chat_model(tmp_path / "missing")


@torch.no_grad()
def test_fair_esm_back_end_splices_the_same_way():
    from biomedgpt.model import BioMedGPT, get_preset
    from biomedgpt.model.lm import load_lm

    config = get_preset("tiny")
    config.protein.backend = "fair"
    config.protein.intermediate_size = None
    llm, tokenizer = load_lm(config.lm)
    model = BioMedGPT(config, llm, tokenizer).eval()
    batch = model.splice(chat_prompt("What is it?", proteins=1), None, ["MKTAYIAK"])
    (_, start, end), = batch.spans[0]
    assert end - start == 8 + 2


def test_export_weights_ships_a_trained_folder_in_fp16_atomically(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from biomedgpt.cli import app
    from biomedgpt.model import load_pretrained, save_pretrained
    from biomedgpt.model.weights import export_weights

    untrained = save_pretrained(tiny_model, tmp_path / "untrained", include_lm=False)
    with pytest.raises(CheckpointError, match="not marked trained"):
        export_weights(untrained, tmp_path / "shipped")
    assert not (tmp_path / "shipped").exists()
    tiny_model.config.trained = True
    try:
        run = save_pretrained(tiny_model, tmp_path / "run-model", include_lm=False)
    finally:
        tiny_model.config.trained = False
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "stale.bin").write_bytes(b"old")  # replaced as a whole, not merged
    result = CliRunner().invoke(app, ["export-weights", str(run), "--out", str(tmp_path / "shipped")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "shipped").iterdir()) == ["SHA256SUMS", "config.json", "model.safetensors"]
    assert "model.safetensors\t" in result.output and len(result.output.split("\t")[-1].strip()) == 64
    shipped = load_pretrained(tmp_path / "shipped")
    assert shipped.config.trained
    for name, value in tiny_model.state_dict().items():
        if name.startswith("proj_mol"):
            assert torch.allclose(shipped.state_dict()[name], value, atol=1e-3)  # fp16 round trip
    with pytest.raises(CheckpointError, match="not a saved BioMedGPT folder"):
        export_weights(tmp_path / "nowhere", tmp_path / "other")
