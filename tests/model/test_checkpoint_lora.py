"""LoRA adapters on the LM (issue 15): saved next to the encoders, merged into the LM at load without peft,
exactly as peft merges them; exported in fp16 under the checksums; refused when they do not fit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from biomedgpt.core.errors import CheckpointError
from biomedgpt.model.config import BioMedGPTConfig, LoRAConfig
from biomedgpt.model.conversation import chat_prompt

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
PROMPT = chat_prompt("What is it?", molecules=1)


def adapted_tiny(r: int = 4, alpha: float = 8.0, targets: list[str] | None = None):
    """A tiny BioMedGPT with LoRA on its LM and non-zero adapters (fresh B is zero: no delta to check)."""
    from biomedgpt.model import load_model
    from biomedgpt.model.lora import add_lora, lora_parameters

    model = load_model("tiny")
    config = LoRAConfig(r=r, alpha=alpha, **({"target_modules": targets} if targets else {}))
    add_lora(model.llm, config)
    model.config.lora = config
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in lora_parameters(model.llm):
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
        model.proj_mol.weight.add_(0.1)
    return model.eval()


@torch.no_grad()
def test_saved_adapters_load_merged_into_a_plain_lm_exactly_as_peft_merges(tmp_path):
    from biomedgpt.model import load_model, save_pretrained
    from biomedgpt.model.lora import ADAPTER_FILE, lora_modules

    model = adapted_tiny()
    expected = model(PROMPT, ASPIRIN).logits
    assert not torch.allclose(expected, load_model("tiny")(PROMPT, ASPIRIN).logits, atol=1e-3)  # the adapters matter
    folder = save_pretrained(model, tmp_path / "saved")
    adapters = load_file(str(folder / ADAPTER_FILE))
    assert "model.layers.0.self_attn.q_proj.lora_A.weight" in adapters and len(adapters) == 2 * 7 * 2  # 7 per layer
    assert json.loads((folder / "config.json").read_text())["config"]["lora"]["r"] == 4
    llm_keys = set(load_file(str(folder / "llm" / "model.safetensors")))  # the tiny LM is saved without adapters
    assert not any("lora_" in k or "base_layer" in k for k in llm_keys)

    loaded = load_model(str(folder))
    assert not lora_modules(loaded.llm)
    assert all(type(loaded.llm.get_submodule(name)) is nn.Linear for name in lora_modules(model.llm))
    assert torch.allclose(loaded(PROMPT, ASPIRIN).logits, expected, atol=1e-5)
    for name, module in lora_modules(model.llm).items():  # peft's own merge gives the same weights
        module.merge()
        assert torch.equal(loaded.llm.get_submodule(name).weight, module.base_layer.weight), name


@torch.no_grad()
def test_adapters_can_be_loaded_unmerged_to_continue_training(tmp_path):
    from biomedgpt.model import load_model, save_pretrained
    from biomedgpt.model.lora import lora_parameters, lora_state_dict

    model = adapted_tiny()
    folder = save_pretrained(model, tmp_path / "saved")
    again = load_model(str(folder), merge_lora=False)
    saved, reloaded = lora_state_dict(model.llm), lora_state_dict(again.llm)
    assert saved.keys() == reloaded.keys() and all(torch.equal(saved[k], reloaded[k]) for k in saved)
    assert lora_parameters(again.llm)
    assert torch.allclose(again(PROMPT, ASPIRIN).logits, model(PROMPT, ASPIRIN).logits, atol=1e-6)
    save_pretrained(again, tmp_path / "again")  # saved again as it came
    assert load_file(str(tmp_path / "again" / "lora.safetensors")).keys() == saved.keys()
    merged = load_model(str(folder))
    with pytest.raises(CheckpointError, match="merge_lora=False"):
        save_pretrained(merged, tmp_path / "lost")  # the merged deltas would be lost with the LM source


def test_loading_merges_without_importing_peft(tmp_path):
    from biomedgpt.model import save_pretrained

    folder = save_pretrained(adapted_tiny(), tmp_path / "saved")
    code = ("import sys; from biomedgpt.model import load_model; m = load_model(sys.argv[1]); "
            "print(type(m.llm).__name__, 'peft' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["LlamaForCausalLM", "False"]


def test_adapters_that_do_not_fit_are_refused(tmp_path):
    from biomedgpt.model import load_model, save_pretrained
    from biomedgpt.model.lora import ADAPTER_FILE

    folder = save_pretrained(adapted_tiny(targets=["q_proj", "v_proj"]), tmp_path / "saved")
    manifest = json.loads((folder / "config.json").read_text())
    manifest["config"]["lora"]["r"] = 8  # the file holds r = 4
    (folder / "config.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"q_proj has A \(4, 64\).*r=8"):
        load_model(str(folder))
    manifest["config"]["lora"]["r"] = 4
    (folder / "config.json").write_text(json.dumps(manifest))
    adapters = load_file(str(folder / ADAPTER_FILE))
    adapters.pop("model.layers.1.self_attn.v_proj.lora_B.weight")
    save_file(adapters, str(folder / ADAPTER_FILE))
    with pytest.raises(CheckpointError, match="lack lora_A or lora_B: model.layers.1.self_attn.v_proj"):
        load_model(str(folder))
    (folder / ADAPTER_FILE).unlink()
    with pytest.raises(CheckpointError, match="config.lora is set but lora.safetensors is missing"):
        load_model(str(folder))


def test_export_ships_fp16_adapters_under_the_checksums(tmp_path):
    from biomedgpt.core.files import SUMS_FILE, read_sha256sums
    from biomedgpt.model import load_model, save_pretrained
    from biomedgpt.model.lora import ADAPTER_FILE, lora_modules
    from biomedgpt.model.weights import export_weights

    model = adapted_tiny()
    model.config.trained = True
    run = save_pretrained(model, tmp_path / "run", include_lm=False)  # the tiny LM rebuilds from its seed
    shipped = tmp_path / "shipped"
    files = export_weights(run, shipped)
    assert sorted(files) == ["config.json", ADAPTER_FILE, "model.safetensors"]
    assert sorted(read_sha256sums(shipped / SUMS_FILE)) == sorted(files)
    assert {v.dtype for v in load_file(str(shipped / ADAPTER_FILE)).values()} == {torch.float16}
    loaded = load_model(str(shipped))
    with torch.no_grad():
        for name, module in lora_modules(model.llm).items():  # fp16 adapters, merged as peft would merge them
            module.merge()
            assert torch.allclose(loaded.llm.get_submodule(name).weight, module.base_layer.weight, atol=2e-3), name

    data = bytearray((shipped / ADAPTER_FILE).read_bytes())
    data[-1] ^= 0xFF
    (shipped / ADAPTER_FILE).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="lora.safetensors does not match its checksum"):
        load_model(str(shipped))
    sums = (shipped / SUMS_FILE).read_text().splitlines()
    (shipped / SUMS_FILE).write_text("".join(f"{line}\n" for line in sums if ADAPTER_FILE not in line))
    with pytest.raises(CheckpointError, match="not covered by"):
        load_model(str(shipped))
    (run / ADAPTER_FILE).unlink()
    with pytest.raises(CheckpointError, match="lora.safetensors is missing"):
        export_weights(run, tmp_path / "other")


def test_configs_without_lora_still_load():
    from biomedgpt.model.weights import mini_weights_dir

    shipped = json.loads((mini_weights_dir() / "config.json").read_text())["config"]
    assert BioMedGPTConfig.from_dict(shipped).lora is None or "lora" in shipped
    assert BioMedGPTConfig.from_dict({"name": "x"}).lora is None
    assert LoRAConfig().target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
