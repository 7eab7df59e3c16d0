"""Proteins for BioMedGPT: validated sequences → ESM-2 last-layer per-token features (BOS … EOS).

Use::

    from biomedgpt.model.protein import HFEsmEncoder, esm_config, load_fair_esm_checkpoint
    enc = HFEsmEncoder(esm_config(6, 320, 20)).eval()         # fresh esm2_t6_8M-shaped weights
    enc = load_fair_esm_checkpoint("esm2_t6_8M_UR50D.pt")      # or fair-esm weights from disk
    feats, mask = enc.encode(["MKTAYIAKQR", "MLSD"])           # [2, 12, H], mask [2, 12]

Two back ends sit behind one interface (``ProteinEncoder``):

- ``HFEsmEncoder`` subclasses transformers' ``EsmModel`` (pooler and contact head included), because
  the official BioMedGPT-10B checkpoint stores ``prot_structure_encoder.`` + HF ``EsmModel`` names.
- ``FairEsmEncoder`` subclasses fair-esm's ``ESM2``, for the ``esm2_*.pt`` files fair-esm users hold.

Both tokenize with fair-esm's ESM-1b alphabet: ESM-2 uses the same 33-token vocabulary, in the same
order as HF's esm2 ``vocab.txt`` (``<cls> <pad> <eos> <unk> L A G V … <null_1> <mask>``; checked by the
tests against transformers' ``get_default_vocab_list``), so one tokenization feeds both, and
``fair_to_hf_state_dict`` makes the same weights run in either.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import esm
import torch
from esm.model.esm2 import ESM2
from esm.pretrained import load_model_and_alphabet_core
from torch import Tensor
from transformers import EsmConfig, EsmModel

from biomedgpt.core import chem
from biomedgpt.core.chem import (  # noqa: F401  (re-exported: the model's public sequence API)
    EXTRA_AMINO_ACIDS,
    STANDARD_AMINO_ACIDS,
    TOO_LONG_POLICIES,
    SequenceTruncatedWarning,
)
from biomedgpt.core.errors import CheckpointError, ConfigError, InvalidSequenceError

__all__ = [
    "STANDARD_AMINO_ACIDS",
    "EXTRA_AMINO_ACIDS",
    "MAX_TOKENS",
    "MAX_RESIDUES",
    "TOO_LONG_POLICIES",
    "SequenceTruncatedWarning",
    "validate_sequence",
    "esm_alphabet",
    "tokenize_sequences",
    "ProteinEncoder",
    "HFEsmEncoder",
    "FairEsmEncoder",
    "EsmPreset",
    "ESM_PRESETS",
    "esm_config",
    "esm_config_from_preset",
    "fair_to_hf_state_dict",
    "hf_esm_from_fair",
    "load_fair_esm_checkpoint",
    "load_hf_esm",
]

#: ESM-2 was trained on at most 1024 tokens, BOS and EOS included.
MAX_TOKENS = 1024
#: So at most 1022 residues per sequence.
MAX_RESIDUES = MAX_TOKENS - 2


def validate_sequence(sequence: str, *, max_residues: int = MAX_RESIDUES, on_too_long: str = "truncate",
                      name: str | None = None) -> str:
    """``core.chem.validate_sequence`` with ESM-2's window (1022 residues) as the default limit."""
    return chem.validate_sequence(sequence, max_residues=max_residues, on_too_long=on_too_long, name=name)


# ----------------------------------------------------------------------------- tokenization


@lru_cache(maxsize=1)
def esm_alphabet() -> esm.data.Alphabet:
    """fair-esm's ESM-1b alphabet, which ESM-2 (fair-esm and HF) uses: 33 tokens, BOS ``<cls>``, EOS ``<eos>``."""
    return esm.data.Alphabet.from_architecture("ESM-1b")


def tokenize_sequences(
    sequences: str | Sequence[str], *, on_too_long: str = "truncate"
) -> tuple[Tensor, Tensor]:
    """Validate and tokenize proteins: ``tokens`` [B, T] long (BOS … EOS, right-padded) and ``mask`` [B, T] bool.

    ``T`` is the longest sequence + 2; ``mask`` is True on real tokens, BOS and EOS included.
    """
    if isinstance(sequences, str):
        sequences = [sequences]
    if not isinstance(sequences, Sequence) or len(sequences) == 0:
        raise InvalidSequenceError("no protein sequences given")
    many = len(sequences) > 1
    cleaned = [
        validate_sequence(seq, on_too_long=on_too_long, name=f"#{i + 1} of {len(sequences)}" if many else None)
        for i, seq in enumerate(sequences)
    ]
    alphabet = esm_alphabet()
    _, _, tokens = alphabet.get_batch_converter()([(str(i), seq) for i, seq in enumerate(cleaned)])
    return tokens, tokens.ne(alphabet.padding_idx)


# ----------------------------------------------------------------------------- the interface


@runtime_checkable
class ProteinEncoder(Protocol):
    """What BioMedGPT needs from a protein encoder; both ESM-2 back ends implement it."""

    @property
    def hidden_size(self) -> int:
        """Width of the per-token features (320 for esm2_t6_8M, 2560 for esm2_t36_3B)."""
        ...

    def encode(self, sequences: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Last-layer features ``[B, T, H]`` incl. BOS and EOS (T = max L + 2; padding rows are 0) and mask ``[B, T]``."""
        ...


class HFEsmEncoder(EsmModel):
    """transformers ``EsmModel`` (pooler and contact head kept) that encodes protein strings.

    A subclass rather than a wrapper so that ``state_dict()`` names equal HF ``EsmModel``'s: the
    official checkpoint's ``prot_structure_encoder.*`` slice then loads with no renaming.
    """

    def __init__(self, config: EsmConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config, add_pooling_layer=add_pooling_layer)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    def encode(self, sequences: Sequence[str], *, on_too_long: str = "truncate") -> tuple[Tensor, Tensor]:
        tokens, mask = tokenize_sequences(sequences, on_too_long=on_too_long)
        tokens, mask = tokens.to(self.device), mask.to(self.device)
        features = self(input_ids=tokens, attention_mask=mask.long()).last_hidden_state
        return features * mask.unsqueeze(-1).to(features.dtype), mask


class FairEsmEncoder(ESM2):
    """fair-esm ``ESM2`` that encodes protein strings; same constructor and state dict as ``ESM2``."""

    @property
    def hidden_size(self) -> int:
        return int(self.embed_dim)

    def encode(self, sequences: Sequence[str], *, on_too_long: str = "truncate") -> tuple[Tensor, Tensor]:
        tokens, mask = tokenize_sequences(sequences, on_too_long=on_too_long)
        device = self.embed_tokens.weight.device
        tokens, mask = tokens.to(device), mask.to(device)
        features = self(tokens, repr_layers=[self.num_layers])["representations"][self.num_layers]
        return features * mask.unsqueeze(-1).to(features.dtype), mask


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class EsmPreset:
    """The shape of one ESM-2 model (fair-esm name ``esm2_t{layers}_{params}``)."""

    num_layers: int
    hidden_size: int
    num_heads: int
    intermediate_size: int


#: Released ESM-2 shapes, plus ``esm2_tiny`` for tests (2 layers, 32 wide, 4 heads).
ESM_PRESETS: dict[str, EsmPreset] = {
    "esm2_tiny": EsmPreset(2, 32, 4, 128),
    "esm2_t6_8M": EsmPreset(6, 320, 20, 1280),
    "esm2_t12_35M": EsmPreset(12, 480, 20, 1920),
    "esm2_t30_150M": EsmPreset(30, 640, 20, 2560),
    "esm2_t33_650M": EsmPreset(33, 1280, 20, 5120),
    "esm2_t36_3B": EsmPreset(36, 2560, 40, 10240),
    "esm2_t48_15B": EsmPreset(48, 5120, 40, 20480),
}


def esm_config(
    num_layers: int, hidden_size: int, num_heads: int, intermediate_size: int | None = None, **kw: Any
) -> EsmConfig:
    """An ``EsmConfig`` with ESM-2's settings (rotary, token dropout, no pre-LN, 33-token vocab).

    ``intermediate_size`` defaults to 4 × hidden, as in every released ESM-2 (and fair-esm's ESM2,
    which hard-codes it). ``kw`` overrides or extends any field.
    """
    if hidden_size % num_heads:
        raise ConfigError(f"ESM hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
    alphabet = esm_alphabet()
    fields: dict[str, Any] = dict(
        vocab_size=len(alphabet.all_toks),
        mask_token_id=alphabet.mask_idx,
        pad_token_id=alphabet.padding_idx,
        eos_token_id=alphabet.eos_idx,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=MAX_TOKENS + 2,
        layer_norm_eps=1e-5,
        position_embedding_type="rotary",
        emb_layer_norm_before=False,
        token_dropout=True,
        is_folding_model=False,
        architectures=["EsmForMaskedLM"],
    )
    fields.update(kw)
    return EsmConfig(**fields)


def esm_config_from_preset(name: str, **kw: Any) -> EsmConfig:
    """``esm_config`` for a named shape in ``ESM_PRESETS`` (e.g. "esm2_t6_8M", "esm2_t36_3B")."""
    if name not in ESM_PRESETS:
        raise ConfigError(f"unknown ESM-2 preset {name!r}; known: {', '.join(ESM_PRESETS)}")
    p = ESM_PRESETS[name]
    return esm_config(p.num_layers, p.hidden_size, p.num_heads, p.intermediate_size, **kw)


# ----------------------------------------------------------------------------- fair-esm → HF

#: fair-esm per-layer names → HF ``EsmLayer`` names (as transformers' convert_esm script maps them).
_LAYER_NAMES = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "final_layer_norm": "LayerNorm",
}
_TOP_NAMES = {
    "embed_tokens.weight": "embeddings.word_embeddings.weight",
    "emb_layer_norm_after.weight": "encoder.emb_layer_norm_after.weight",
    "emb_layer_norm_after.bias": "encoder.emb_layer_norm_after.bias",
    "contact_head.regression.weight": "contact_head.regression.weight",
    "contact_head.regression.bias": "contact_head.regression.bias",
}
_FAIR_FILE_PREFIX = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")
_FAIR_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)\.(weight|bias)$")
_FAIR_ROTARY_KEY = re.compile(r"^layers\.(\d+)\.self_attn\.rot_emb\.inv_freq$")


def fair_to_hf_state_dict(fair_state_dict: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    """Rename a fair-esm ESM-2 state dict to HF ``EsmModel`` names (tensors shared, not copied).

    Accepts module names (``layers.0.fc1.weight``) or on-disk names (``encoder.sentence_encoder.…``).
    The masked-LM head (``lm_head.*``) is dropped: ``EsmModel`` has none. The per-layer rotary
    ``inv_freq`` buffers (identical by construction) become HF's one ``rotary_embeddings.inv_freq``.
    HF's pooler has no fair-esm counterpart and is not produced. Unknown keys, missing keys and
    layers beyond ``num_layers`` raise ``CheckpointError`` listing them.
    """
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for raw_key, tensor in fair_state_dict.items():
        key = _FAIR_FILE_PREFIX.sub("", raw_key)
        if key.startswith("lm_head."):
            continue
        if key in _TOP_NAMES:
            out[_TOP_NAMES[key]] = tensor
            continue
        rotary = _FAIR_ROTARY_KEY.match(key)
        if rotary:
            if int(rotary.group(1)) >= num_layers:
                unknown.append(raw_key)
            elif int(rotary.group(1)) == 0:
                out["rotary_embeddings.inv_freq"] = tensor
            continue
        layer = _FAIR_LAYER_KEY.match(key)
        if layer and layer.group(2) in _LAYER_NAMES and int(layer.group(1)) < num_layers:
            index, name, kind = layer.groups()
            out[f"encoder.layer.{index}.{_LAYER_NAMES[name]}.{kind}"] = tensor
            continue
        unknown.append(raw_key)
    expected = {"embeddings.word_embeddings.weight", "encoder.emb_layer_norm_after.weight"} | {
        f"encoder.layer.{i}.{hf}.{kind}" for i in range(num_layers) for hf in _LAYER_NAMES.values() for kind in ("weight", "bias")
    }
    missing = sorted(expected - out.keys())
    if unknown or missing:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if unknown:
            parts.append("not ESM-2 (or beyond layer %d): %s" % (num_layers - 1, ", ".join(unknown)))
        raise CheckpointError(f"cannot map this fair-esm state dict to HF EsmModel ({num_layers} layers): " + "; ".join(parts))
    return out


def hf_esm_from_fair(fair_model: ESM2) -> HFEsmEncoder:
    """An ``HFEsmEncoder`` carrying a fair-esm ``ESM2``'s weights (same features; fresh pooler)."""
    config = esm_config(
        fair_model.num_layers, fair_model.embed_dim, fair_model.attention_heads, token_dropout=fair_model.token_dropout
    )
    dtype = fair_model.embed_tokens.weight.dtype
    model = HFEsmEncoder(config).to(dtype)
    state = fair_to_hf_state_dict(fair_model.state_dict(), fair_model.num_layers)
    result = model.load_state_dict(state, strict=False)
    # The pooler is BioMedGPT's only part without a fair-esm source (the official checkpoint has it).
    missing = [k for k in result.missing_keys if not k.startswith("pooler.") and not k.endswith("inv_freq")]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"fair-esm → HF conversion left missing {missing}, unexpected {result.unexpected_keys}")
    return model.to(fair_model.embed_tokens.weight.device).train(fair_model.training)


# ----------------------------------------------------------------------------- loading


def _torch_load(path: Path, *, trust_checkpoint: bool, what: str) -> Any:
    """torch.load a fair-esm file: weights-only with ``argparse.Namespace`` allow-listed, unless trusted."""
    def load(mmap: bool) -> Any:
        if trust_checkpoint:  # the caller vouches for the file: a full unpickle, as fair-esm itself does
            return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)

    try:
        try:  # mmap keeps a 3B file (several GB) out of RAM until fair-esm copies it into the model
            return load(mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            return load(mmap=False)  # a legacy (pre-zip) torch file cannot be memory-mapped
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{what} {path} holds objects beyond tensors and argparse.Namespace ({first}); "
            "if you trust the file, load it with trust_checkpoint=True"
        ) from error
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"cannot read {what} {path}: {type(error).__name__}: {error}") from error


def load_fair_esm_checkpoint(path: str | Path, *, trust_checkpoint: bool = False) -> FairEsmEncoder:
    """Load a fair-esm ESM-2 ``.pt`` file (e.g. ``esm2_t6_8M_UR50D.pt``) as a ``FairEsmEncoder`` on CPU.

    Why not ``esm.pretrained.load_model_and_alphabet_local``: it calls ``torch.load`` without
    ``weights_only``, which torch ≥ 2.6 refuses for the pickled ``argparse.Namespace`` inside real
    files. We load weights-only with that one class allow-listed (``trust_checkpoint=True`` allows a
    full unpickle), then hand the data to fair-esm's ``load_model_and_alphabet_core``. A
    ``<stem>-contact-regression.pt`` beside the file is loaded too; without it fair-esm warns that
    contact prediction is untrained (per-token features are unaffected).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ESM-2 checkpoint {path} not found")
    model_data = _torch_load(path, trust_checkpoint=trust_checkpoint, what="ESM-2 checkpoint")
    if not isinstance(model_data, dict) or "model" not in model_data:
        raise CheckpointError(f"{path} is not a fair-esm checkpoint (no 'model' state dict)")
    if "cfg" not in model_data:
        raise CheckpointError(f"{path} is not an ESM-2 checkpoint (no 'cfg'; ESM-1, ESM-1b and ESM-1v files are not supported)")
    regression_path = path.with_name(f"{path.stem}-contact-regression.pt")
    regression_data = None
    if regression_path.is_file():
        regression_data = _torch_load(regression_path, trust_checkpoint=trust_checkpoint, what="contact regression")
        if not isinstance(regression_data, dict) or not isinstance(regression_data.get("model"), dict):
            raise CheckpointError(f"{regression_path} is not a fair-esm contact-regression file (no 'model' dict)")
    # fair-esm picks the ESM-2 code path by name prefix; the file's layout ("cfg") already says ESM-2.
    model_name = path.stem if path.stem.startswith("esm2") else f"esm2_{path.stem}"
    try:
        model, alphabet = load_model_and_alphabet_core(model_name, model_data, regression_data)
    except (RuntimeError, KeyError, AttributeError, TypeError) as error:
        raise CheckpointError(f"{path} does not load as ESM-2: {type(error).__name__}: {error}") from error

    # Re-home the weights in our subclass without a copy: build on the meta device, then assign.
    with torch.device("meta"):
        encoder = FairEsmEncoder(
            num_layers=model.num_layers,
            embed_dim=model.embed_dim,
            attention_heads=model.attention_heads,
            alphabet=alphabet,
            token_dropout=model.token_dropout,
        )
    encoder.load_state_dict(model.state_dict(), strict=True, assign=True)
    encoder.lm_head.weight = encoder.embed_tokens.weight  # ESM-2 ties the LM head to the embeddings
    return encoder.eval()


def load_hf_esm(path_or_dir: str | Path, *, dtype: torch.dtype | None = None) -> HFEsmEncoder:
    """Load a user-supplied HF ESM-2 folder (``config.json`` + weights) offline as an ``HFEsmEncoder``.

    Folders saved from ``EsmForMaskedLM`` (the hub layout, ``esm.`` prefix) and from ``EsmModel``
    both load; the masked-LM head is ignored. Weights other than the pooler must all be present.
    """
    folder = Path(path_or_dir)
    if folder.is_file() and folder.name == "config.json":
        folder = folder.parent
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"HF ESM folder {folder} not found or has no config.json")
    try:
        config = EsmConfig.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # noqa: BLE001 - transformers raises several types for a bad config
        raise CheckpointError(f"cannot read {folder / 'config.json'}: {error}") from error
    if config.model_type != "esm" or config.is_folding_model:
        raise CheckpointError(f"{folder} is not an ESM-2 language model (model_type={config.model_type!r})")
    try:
        model, info = HFEsmEncoder.from_pretrained(
            folder, config=config, local_files_only=True, output_loading_info=True, dtype=dtype or "auto"
        )
    except (OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"cannot load ESM weights from {folder}: {error}") from error
    missing = [
        k for k in info.get("missing_keys", []) if not k.startswith(("pooler.", "contact_head.")) and not k.endswith(("inv_freq", "position_ids"))
    ]
    if missing:
        raise CheckpointError(f"{folder} lacks ESM weights: {', '.join(sorted(missing))}")
    return model.eval()
