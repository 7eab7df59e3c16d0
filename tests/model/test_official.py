"""load_official on a synthetic checkpoint at tiny sizes in the official layout, with all its quirks.

Quirks reproduced: one fp16 state dict; per-layer rotary ``inv_freq`` keys for the LM and for ESM-2
(transformers 4.x layout), no ``embeddings.position_ids``, no model-level ESM ``rotary_embeddings.inv_freq``,
and a vocabulary extended by ``[PAD]``; a SentencePiece Llama tokenizer folder without pad and an ESM
config folder. The real 20 GB file is not used: the loader is verified on this layout only.
"""

from __future__ import annotations

import pytest
import torch

from biomedgpt.model.conversation import chat_prompt
from biomedgpt.core.errors import CheckpointError

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
PEPTIDE = "MKTAYIAKQR"


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from biomedgpt.model import BioMedGPT, get_preset
    from biomedgpt.model.lm import _TINY_CORPUS, write_sentencepiece_llama_tokenizer
    from biomedgpt.model.protein import HFEsmEncoder, esm_config

    root = tmp_path_factory.mktemp("official")
    lm_dir, esm_dir = root / "BioMedGPT-LM-7B", root / "esm2-3b"
    write_sentencepiece_llama_tokenizer(lm_dir, _TINY_CORPUS.splitlines(), vocab_size=340)
    base_vocab = len(AutoTokenizer.from_pretrained(lm_dir))
    lm_config = LlamaConfig(vocab_size=base_vocab, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=4, intermediate_size=96, bos_token_id=1, eos_token_id=2)
    lm_config.save_pretrained(lm_dir)  # the LM folder holds config + tokenizer (weights are in the .pth)
    e_config = esm_config(2, 32, 4)
    e_config.save_pretrained(esm_dir)

    torch.manual_seed(1)
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    llm = LlamaForCausalLM(LlamaConfig(**{**lm_config.to_dict(), "vocab_size": base_vocab + 1}))
    config = get_preset("tiny")
    config.molecule.emb_dim, config.molecule.num_layer = 24, 3
    source = BioMedGPT(config, llm, tokenizer, prot_encoder=HFEsmEncoder(e_config))
    for name, buffer in source.named_buffers():  # non-trivial batch-norm statistics
        if name.endswith(("running_mean", "running_var")):
            buffer.uniform_(0.5, 1.5)
    for name, tensor in list(source.named_parameters()) + list(source.named_buffers()):
        if tensor.is_floating_point() and not name.endswith("inv_freq"):  # weights exactly representable in fp16
            tensor.data = tensor.data.half().float()
    source = source.eval()

    state = {k: (v.half() if v.is_floating_point() else v) for k, v in source.state_dict().items()}
    state.pop("prot_structure_encoder.rotary_embeddings.inv_freq", None)
    state.pop("prot_structure_encoder.embeddings.position_ids", None)
    head_dim = 32 // 4
    esm_inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    llm_inv = 1.0 / (10000 ** (torch.arange(0, 12, 2).float() / 12))
    for i in range(2):
        state[f"prot_structure_encoder.encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq"] = esm_inv.half()
        state[f"llm.model.layers.{i}.self_attn.rotary_emb.inv_freq"] = llm_inv.half()
    assert state["llm.model.embed_tokens.weight"].shape[0] == base_vocab + 1
    checkpoint = root / "biomedgpt_10b.pth"
    torch.save(state, checkpoint)
    return {"source": source, "state": state, "checkpoint": checkpoint, "lm_dir": lm_dir, "esm_dir": esm_dir,
            "root": root, "vocab": base_vocab + 1}


@torch.no_grad()
def test_official_layout_loads_and_outputs_are_identical(official):
    from biomedgpt.model import load_official

    model = load_official(official["checkpoint"], official["lm_dir"], official["esm_dir"], dtype=torch.float32)
    source = official["source"]
    assert model.config.trained is True
    assert len(model.tokenizer) == official["vocab"] and model.tokenizer.pad_token == "[PAD]"
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))
    prompts = [chat_prompt("What is it?", molecules=1, proteins=1), chat_prompt("Hello")]
    args = (prompts, [[ASPIRIN], None], [[PEPTIDE], None], ["Aspirin with a peptide.", "Hi."])
    assert torch.equal(model(*args).logits, source(*args).logits)
    assert model.generate_ids(prompts[0], [ASPIRIN], [PEPTIDE], max_new_tokens=4).tolist() == \
        source.generate_ids(prompts[0], [ASPIRIN], [PEPTIDE], max_new_tokens=4).tolist()


def test_official_loads_in_fp16(official):
    from biomedgpt.model import load_official

    model = load_official(official["checkpoint"], official["lm_dir"], official["esm_dir"])
    assert model.llm.model.embed_tokens.weight.dtype == torch.float16
    assert model.proj_mol.weight.dtype == torch.float16
    assert torch.equal(model.proj_prot.weight, official["state"]["proj_prot.weight"])


def test_unexpected_and_missing_keys_are_named(official):
    from biomedgpt.model import load_official

    state = dict(official["state"])
    state["proj_mol.extra.weight"] = torch.zeros(2)
    del state["proj_prot.bias"]
    bad = official["root"] / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError) as info:
        load_official(bad, official["lm_dir"], official["esm_dir"])
    assert "missing keys: proj_prot.bias" in str(info.value)
    assert "unexpected keys: proj_mol.extra.weight" in str(info.value)
    with pytest.raises(CheckpointError, match="not found"):
        load_official(official["root"] / "nope.pth", official["lm_dir"], official["esm_dir"])
    with pytest.raises(CheckpointError, match="has no config.json"):
        load_official(official["checkpoint"], official["root"], official["esm_dir"])


def test_wrong_vocabulary_size_is_reported(official):
    from biomedgpt.model import load_official

    state = dict(official["state"])
    state["llm.model.embed_tokens.weight"] = state["llm.model.embed_tokens.weight"][:-1]
    bad = official["root"] / "short-vocab.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="wrong shape: llm.model.embed_tokens.weight"):
        load_official(bad, official["lm_dir"], official["esm_dir"])
