"""fair-esm and HF ESM-2 give the same features on the same weights, incl. a real-format ``.pt`` file.

Run: ``.venv/bin/python -m pytest -q tests/model/test_esm_backends.py``.
The tiny ``esm2_t2_tiny.pt`` is written in fair-esm's on-disk ESM-2 layout: ``{"model": state dict
with encoder.sentence_encoder. / encoder. prefixes, "cfg": {"model": argparse.Namespace}}``, the
pickled Namespace being what makes plain weights-only loading fail on real files.
"""

from __future__ import annotations

import argparse
import fractions
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from transformers import EsmForMaskedLM

from biomedgpt.core.errors import CheckpointError
from biomedgpt.model.protein import (
    FairEsmEncoder,
    HFEsmEncoder,
    ProteinEncoder,
    fair_to_hf_state_dict,
    hf_esm_from_fair,
    load_fair_esm_checkpoint,
    load_hf_esm,
)

SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQ", "MLSD", "ACDEFGHIKLMNPQRSTVWYXBZUO"]
LAYERS, WIDTH, HEADS = 2, 32, 4


@pytest.fixture(scope="module")
def fair() -> FairEsmEncoder:
    """Tiny ESM2 with every tensor random (layer norms too), so a wrong name mapping shows."""
    torch.manual_seed(0)
    model = FairEsmEncoder(num_layers=LAYERS, embed_dim=WIDTH, attention_heads=HEADS).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn_like(param) * (0.3 if "norm" not in name else 0.2) + ("norm" in name and name.endswith("weight")))
    return model


def _features(model: ProteinEncoder, sequences=SEQUENCES):
    with torch.no_grad():
        return model.encode(sequences)


def _fair_file_state(model: FairEsmEncoder) -> dict[str, torch.Tensor]:
    """Module names → on-disk names of fair-esm's ESM-2 files."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith(("lm_head.", "contact_head.")):
            if key.startswith("lm_head."):
                out[f"encoder.{key}"] = value.clone()
            continue  # the contact regression lives in its own -contact-regression.pt file
        out[f"encoder.sentence_encoder.{key}"] = value.clone()
    return out


def _write_checkpoint(model: FairEsmEncoder, path: Path, *, regression: bool, extra_cfg=None) -> None:
    cfg = argparse.Namespace(
        encoder_layers=LAYERS, encoder_embed_dim=WIDTH, encoder_attention_heads=HEADS, token_dropout=True, **(extra_cfg or {})
    )
    torch.save({"model": _fair_file_state(model), "cfg": {"model": cfg}}, path)
    if regression:
        state = model.state_dict()
        torch.save(
            {
                "model": {k: state[k].clone() for k in ("contact_head.regression.weight", "contact_head.regression.bias")},
                "args": argparse.Namespace(arch="contact_regression"),
            },
            path.with_name(f"{path.stem}-contact-regression.pt"),
        )


def test_both_backends_implement_the_interface(fair):
    hf = hf_esm_from_fair(fair)
    assert isinstance(fair, ProteinEncoder) and isinstance(hf, ProteinEncoder)
    assert fair.hidden_size == hf.hidden_size == WIDTH


def test_fair_and_hf_give_the_same_features(fair):
    hf = hf_esm_from_fair(fair).eval()
    fair_feats, fair_mask = _features(fair)
    hf_feats, hf_mask = _features(hf)
    assert tuple(fair_feats.shape) == (3, len(SEQUENCES[2]) + 2, WIDTH)
    assert torch.equal(fair_mask, hf_mask)
    torch.testing.assert_close(hf_feats, fair_feats, rtol=1e-5, atol=1e-5)
    assert fair_feats.abs().max() > 0.1  # a real signal, not two zero tensors


def test_hf_contact_head_matches_fair(fair):
    hf = hf_esm_from_fair(fair).eval()
    torch.testing.assert_close(hf.contact_head.regression.weight, fair.contact_head.regression.weight)
    assert "pooler.dense.weight" in hf.state_dict()


def test_mapping_reports_unknown_keys(fair):
    state = dict(fair.state_dict())
    state["layers.0.self_attn.bogus.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"layers\.0\.self_attn\.bogus\.weight"):
        fair_to_hf_state_dict(state, LAYERS)
    with pytest.raises(CheckpointError, match=r"missing: .*encoder\.layer\.2\."):
        fair_to_hf_state_dict(fair.state_dict(), LAYERS + 1)


def test_plain_weights_only_load_refuses_the_file(fair, tmp_path):
    """The file really holds a pickled Namespace, so our allow-list path is what loads it."""
    path = tmp_path / "esm2_t2_tiny.pt"
    _write_checkpoint(fair, path, regression=False)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_load_fair_checkpoint_with_contact_regression(fair, tmp_path):
    path = tmp_path / "esm2_t2_tiny.pt"
    _write_checkpoint(fair, path, regression=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with the regression file, fair-esm has nothing to warn about
        loaded = load_fair_esm_checkpoint(path)
    assert isinstance(loaded, FairEsmEncoder) and not loaded.training
    assert loaded.lm_head.weight is loaded.embed_tokens.weight
    torch.testing.assert_close(loaded.contact_head.regression.weight, fair.contact_head.regression.weight)
    loaded_feats, _ = _features(loaded)
    torch.testing.assert_close(loaded_feats, _features(fair)[0], rtol=0, atol=0)
    hf_feats, _ = _features(hf_esm_from_fair(loaded).eval())
    torch.testing.assert_close(hf_feats, loaded_feats, rtol=1e-5, atol=1e-5)


def test_load_fair_checkpoint_without_contact_regression(fair, tmp_path):
    path = tmp_path / "my_tiny_model.pt"  # a name fair-esm would not recognise as ESM-2
    _write_checkpoint(fair, path, regression=False)
    with pytest.warns(UserWarning, match="Regression weights not found"):
        loaded = load_fair_esm_checkpoint(path)
    torch.testing.assert_close(_features(loaded)[0], _features(fair)[0], rtol=0, atol=0)
    hf_feats, _ = _features(hf_esm_from_fair(loaded).eval())
    torch.testing.assert_close(hf_feats, _features(fair)[0], rtol=1e-5, atol=1e-5)


def test_untrusted_objects_need_trust_checkpoint(fair, tmp_path):
    path = tmp_path / "esm2_t2_odd.pt"
    _write_checkpoint(fair, path, regression=False, extra_cfg={"lr": fractions.Fraction(1, 3)})
    with pytest.raises(CheckpointError, match="trust_checkpoint=True"):
        load_fair_esm_checkpoint(path)
    with pytest.warns(UserWarning, match="Regression weights not found"):
        loaded = load_fair_esm_checkpoint(path, trust_checkpoint=True)
    torch.testing.assert_close(_features(loaded)[0], _features(fair)[0], rtol=0, atol=0)


def test_bad_fair_files(fair, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_fair_esm_checkpoint(tmp_path / "esm2_absent.pt")
    corrupt = tmp_path / "esm2_corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="esm2_corrupt.pt"):
        load_fair_esm_checkpoint(corrupt)
    esm1 = tmp_path / "esm1b.pt"
    torch.save({"model": {}, "args": argparse.Namespace(arch="roberta_large")}, esm1)
    with pytest.raises(CheckpointError, match="not an ESM-2 checkpoint"):
        load_fair_esm_checkpoint(esm1)
    truncated = tmp_path / "esm2_truncated.pt"
    state = _fair_file_state(fair)
    del state["encoder.sentence_encoder.layers.1.fc2.weight"]
    cfg = argparse.Namespace(encoder_layers=LAYERS, encoder_embed_dim=WIDTH, encoder_attention_heads=HEADS, token_dropout=True)
    torch.save({"model": state, "cfg": {"model": cfg}}, truncated)
    with pytest.raises(CheckpointError, match=r"layers\.1\.fc2\.weight"):
        load_fair_esm_checkpoint(truncated)


def test_load_hf_esm_folder_round_trips(fair, tmp_path):
    hf = hf_esm_from_fair(fair).eval()
    hf.save_pretrained(tmp_path / "esm_model")
    loaded = load_hf_esm(tmp_path / "esm_model")
    assert isinstance(loaded, HFEsmEncoder)
    torch.testing.assert_close(loaded.pooler.dense.weight, hf.pooler.dense.weight)
    torch.testing.assert_close(_features(loaded)[0], _features(hf)[0], rtol=0, atol=0)


def test_load_hf_esm_from_masked_lm_layout(fair, tmp_path):
    """The hub's esm2 folders hold EsmForMaskedLM weights (``esm.`` prefix, an LM head, no pooler)."""
    hf = hf_esm_from_fair(fair).eval()
    mlm = EsmForMaskedLM(hf.config)
    missing = mlm.esm.load_state_dict({k: v for k, v in hf.state_dict().items() if not k.startswith("pooler.")}, strict=False)
    assert not missing.unexpected_keys
    mlm.save_pretrained(tmp_path / "esm2_mlm")
    loaded = load_hf_esm(tmp_path / "esm2_mlm")
    torch.testing.assert_close(_features(loaded)[0], _features(fair)[0], rtol=1e-5, atol=1e-5)


def test_load_hf_esm_bad_folders(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_hf_esm(tmp_path / "nowhere")
    folder = tmp_path / "config_only"
    folder.mkdir()
    HFEsmEncoder(hf_esm_from_fair(FairEsmEncoder(num_layers=1, embed_dim=8, attention_heads=2)).config).config.save_pretrained(folder)
    with pytest.raises(CheckpointError, match="config_only"):
        load_hf_esm(folder)


def test_load_fair_checkpoint_in_legacy_torch_format(fair, tmp_path):
    """Files written by old torch (pre-zip format) cannot be memory-mapped; they still load."""
    path = tmp_path / "esm2_t2_legacy.pt"
    cfg = argparse.Namespace(encoder_layers=LAYERS, encoder_embed_dim=WIDTH, encoder_attention_heads=HEADS, token_dropout=True)
    torch.save({"model": _fair_file_state(fair), "cfg": {"model": cfg}}, path, _use_new_zipfile_serialization=False)
    with pytest.warns(UserWarning, match="Regression weights not found"):
        loaded = load_fair_esm_checkpoint(path)
    torch.testing.assert_close(_features(loaded)[0], _features(fair)[0], rtol=0, atol=0)
