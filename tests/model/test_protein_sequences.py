"""Protein sequence validation, the shared ESM alphabet, and configs.

Run: ``.venv/bin/python -m pytest -q tests/model/test_protein_sequences.py``.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from biomedgpt.core.errors import ConfigError, InvalidSequenceError
from biomedgpt.model.protein import (
    ESM_PRESETS,
    HFEsmEncoder,
    MAX_RESIDUES,
    MAX_TOKENS,
    SequenceTruncatedWarning,
    esm_alphabet,
    esm_config,
    esm_config_from_preset,
    tokenize_sequences,
    validate_sequence,
)


def test_cleans_whitespace_and_case():
    assert validate_sequence("  mkt ay\nIAkq\r\n") == "MKTAYIAKQ"


def test_all_allowed_letters_pass():
    letters = "ACDEFGHIKLMNPQRSTVWY" + "XBZUO"
    assert validate_sequence(letters) == letters


@pytest.mark.parametrize("sequence, letter, position", [("MKTJAY", "J", 4), ("MK-T", "-", 3), ("mkt1", "1", 4), ("MKT*", "*", 4)])
def test_bad_letter_named_with_position(sequence, letter, position):
    with pytest.raises(InvalidSequenceError) as info:
        validate_sequence(sequence, name="P12345")
    message = str(info.value)
    assert f"{letter!r} at position {position}" in message
    assert "P12345" in message


def test_position_counts_residues_not_whitespace():
    with pytest.raises(InvalidSequenceError, match=r"'J' at position 5"):
        validate_sequence("MKTA\n  J")


def test_empty_is_an_error():
    with pytest.raises(InvalidSequenceError, match="empty"):
        validate_sequence(" \n ")
    with pytest.raises(InvalidSequenceError, match="empty"):
        validate_sequence(">sp|P1|X header only\n")


def test_fasta_is_accepted_and_named_in_errors():
    fasta = ">sp|P69905|HBA_HUMAN Hemoglobin subunit alpha\nMVLSPADKTN\nVKAAWGKVGA\n"
    assert validate_sequence(fasta) == "MVLSPADKTNVKAAWGKVGA"
    with pytest.raises(InvalidSequenceError, match=r"sp\|P69905\|HBA_HUMAN.*'J' at position 3"):
        validate_sequence(">sp|P69905|HBA_HUMAN\nMVJ\n")
    with pytest.raises(InvalidSequenceError, match="2 records"):
        validate_sequence(">a\nMK\n>b\nMK\n")


def test_too_long_truncates_with_warning():
    long = "M" + "A" * 1100
    with pytest.warns(SequenceTruncatedWarning, match=r"1101 residues.*first 1022"):
        out = validate_sequence(long)
    assert out == long[:MAX_RESIDUES]
    assert MAX_RESIDUES == MAX_TOKENS - 2 == 1022


def test_too_long_errors_when_asked():
    with pytest.raises(InvalidSequenceError, match=r"12 residues.*at most 10"):
        validate_sequence("A" * 12, max_residues=10, on_too_long="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert validate_sequence("A" * 10, max_residues=10, on_too_long="error") == "A" * 10
    with pytest.raises(ConfigError, match="on_too_long"):
        validate_sequence("MK", on_too_long="drop")


def test_alphabet_equals_hf_esm2_vocabulary(tmp_path):
    from transformers import EsmTokenizer
    from transformers.models.esm.configuration_esm import get_default_vocab_list

    alphabet = esm_alphabet()
    assert alphabet.all_toks == list(get_default_vocab_list())
    assert len(alphabet.all_toks) == 33
    assert (alphabet.cls_idx, alphabet.padding_idx, alphabet.eos_idx, alphabet.mask_idx) == (0, 1, 2, 32)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(get_default_vocab_list()) + "\n")
    hf = EsmTokenizer(str(vocab))(["MKTAYIAKQR", "MLS"], padding=True, return_tensors="pt")
    tokens, mask = tokenize_sequences(["MKTAYIAKQR", "MLS"])
    assert tokens.tolist() == hf["input_ids"].tolist()
    assert mask.tolist() == hf["attention_mask"].bool().tolist()


def test_tokenize_adds_bos_eos_and_pads():
    tokens, mask = tokenize_sequences(["MK", "mlsd"])
    a = esm_alphabet()
    assert tokens.tolist() == [
        [a.cls_idx, a.get_idx("M"), a.get_idx("K"), a.eos_idx, a.padding_idx, a.padding_idx],
        [a.cls_idx, a.get_idx("M"), a.get_idx("L"), a.get_idx("S"), a.get_idx("D"), a.eos_idx],
    ]
    assert mask.tolist() == [[True] * 4 + [False] * 2, [True] * 6]
    with pytest.raises(InvalidSequenceError, match=r"'#2 of 2' has 'J' at position 2"):
        tokenize_sequences(["MK", "MJ"])
    with pytest.raises(InvalidSequenceError, match="no protein"):
        tokenize_sequences([])


def test_esm_config_has_esm2_settings():
    config = esm_config_from_preset("esm2_t6_8M")
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size) == (6, 320, 20, 1280)
    assert config.position_embedding_type == "rotary"
    assert config.token_dropout is True and config.emb_layer_norm_before is False
    assert (config.vocab_size, config.mask_token_id, config.pad_token_id) == (33, 32, 1)
    assert config.max_position_embeddings == 1026
    big = ESM_PRESETS["esm2_t36_3B"]
    assert (big.num_layers, big.hidden_size, big.num_heads, big.intermediate_size) == (36, 2560, 40, 10240)
    assert esm_config(2, 32, 4).intermediate_size == 128
    with pytest.raises(ConfigError, match="unknown ESM-2 preset"):
        esm_config_from_preset("esm3")
    with pytest.raises(ConfigError, match="divisible"):
        esm_config(2, 30, 4)


def test_hf_encoder_keeps_pooler_and_contact_head():
    model = HFEsmEncoder(esm_config_from_preset("esm2_tiny"))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["pooler.dense.weight"] == (32, 32)
    assert shapes["contact_head.regression.weight"] == (1, 2 * 4)
    assert shapes["embeddings.word_embeddings.weight"] == (33, 32)


def test_protein_encodes_to_l_plus_2_positions():
    torch.manual_seed(0)
    model = HFEsmEncoder(esm_config_from_preset("esm2_tiny")).eval()
    with torch.no_grad():
        feats, mask = model.encode(["MKTAYIAKQR", "MLS"])
    assert tuple(feats.shape) == (2, 12, 32)
    assert mask.sum(dim=1).tolist() == [12, 5]
    assert (feats[1, 5:] == 0).all()  # padding rows are zero
    assert (feats[1, :5].abs().sum(dim=-1) > 0).all()
    with torch.no_grad():
        single, single_mask = model.encode("MLS")
    assert tuple(single.shape) == (1, 5, 32)
    torch.testing.assert_close(single[0], feats[1, :5], rtol=1e-5, atol=1e-5)
