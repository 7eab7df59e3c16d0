"""Typed model configurations and named presets: ``get_preset("mini")``, ``BioMedGPTConfig.from_json(text)``.

Why dataclasses with presets: the three shapes we ship (the released ``biomedgpt-10b``, the CPU-sized
``mini`` and the test-sized ``tiny``) differ only in sizes and the LM source, so one typed object
describes each and round-trips through the JSON ``config.json`` of our own checkpoints. No size is a
scattered constant: every module reads it from here.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from biomedgpt.core.errors import ConfigError

DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class MoleculeEncoderConfig:
    """The GraphMVP / pretrain-gnns GIN: per-atom features of width ``emb_dim``."""

    num_layer: int = 5
    emb_dim: int = 300
    drop_ratio: float = 0.0
    JK: str = "last"


@dataclass
class ProteinEncoderConfig:
    """ESM-2 sizes and back end ("hf": transformers ``EsmModel``; "fair": fair-esm ``ESM2``)."""

    backend: Literal["hf", "fair"] = "hf"
    num_layers: int = 6
    hidden_size: int = 320
    num_heads: int = 20
    intermediate_size: int | None = None  # None: 4 x hidden_size, as in every ESM-2

    @property
    def ffn_size(self) -> int:
        return self.intermediate_size or 4 * self.hidden_size


@dataclass
class LMConfig:
    """The language model: ``source`` is "smollm2" (embedded), "tiny" (built for tests) or a folder path.

    The size fields describe the shape: they build the ``tiny`` LM and document the 10B one
    (whose real shape is read from the BioMedGPT-LM-7B folder's config.json).
    """

    source: str = "smollm2"
    dtype: str | None = None  # None: float32 on CPU, bfloat16 on CUDA
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    seed: int = 0  # initialisation of the tiny LM


@dataclass
class BioMedGPTConfig:
    """Everything needed to rebuild a BioMedGPT model; ``trained`` says whether encoders/adaptors are trained."""

    name: str = "mini"
    molecule: MoleculeEncoderConfig = field(default_factory=MoleculeEncoderConfig)
    protein: ProteinEncoderConfig = field(default_factory=ProteinEncoderConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    max_protein_tokens: int = 1024  # ESM-2 positions incl. BOS and EOS: at most 1022 residues
    on_too_long: Literal["truncate", "error"] = "truncate"
    pad_token: str = "[PAD]"  # added when the tokenizer has none (the 10B vocabulary is 32000 + [PAD])
    trained: bool = False
    retrieval: bool = False  # trained with the "similar known molecules/proteins" context block in the prompt
    retrieval_k: int = 3  # neighbours in that block (1: the nearest one, described in full)
    # "biomedgpt": the released chat format and the paper's Table 1 templates (the 10B model was tuned on
    # them); "chatml": the LM tokenizer's own chat template. A frozen LM only follows the format it was
    # instruction-tuned on, so the mini model (frozen SmolLM2-Instruct) is trained and asked in ChatML.
    prompt_format: Literal["biomedgpt", "chatml"] = "biomedgpt"
    seed: int = 0  # initialisation of untrained encoders and adaptors

    def __post_init__(self) -> None:
        if isinstance(self.molecule, dict):
            self.molecule = _build(MoleculeEncoderConfig, self.molecule, "molecule")
        if isinstance(self.protein, dict):
            self.protein = _build(ProteinEncoderConfig, self.protein, "protein")
        if isinstance(self.lm, dict):
            self.lm = _build(LMConfig, self.lm, "lm")
        if self.protein.backend not in ("hf", "fair"):
            raise ConfigError(f"protein.backend {self.protein.backend!r} is not 'hf' or 'fair'")
        if self.on_too_long not in ("truncate", "error"):
            raise ConfigError(f"on_too_long {self.on_too_long!r} is not 'truncate' or 'error'")
        if self.lm.dtype is not None and self.lm.dtype not in DTYPES:
            raise ConfigError(f"lm.dtype {self.lm.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.prompt_format not in ("biomedgpt", "chatml"):
            raise ConfigError(f"prompt_format {self.prompt_format!r} is not 'biomedgpt' or 'chatml'")
        if self.retrieval_k < 1:
            raise ConfigError(f"retrieval_k must be at least 1, got {self.retrieval_k}")
        if not 3 <= self.max_protein_tokens <= 1024:
            raise ConfigError(f"max_protein_tokens {self.max_protein_tokens} is outside 3..1024 (ESM-2's limit)")

    @property
    def max_residues(self) -> int:
        """Residues that fit once ESM-2's BOS and EOS are added."""
        return self.max_protein_tokens - 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BioMedGPTConfig:
        return _build(cls, data, "config")

    @classmethod
    def from_json(cls, text: str) -> BioMedGPTConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"model config is not valid JSON: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> BioMedGPTConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"model config {path} does not exist")
        return cls.from_json(path.read_text())

    def replace(self, **changes: Any) -> BioMedGPTConfig:
        """A deep copy with top-level fields changed."""
        new = copy.deepcopy(self)
        for key, value in changes.items():
            if not hasattr(new, key):
                raise ConfigError(f"BioMedGPTConfig has no field {key!r}")
            setattr(new, key, value)
        new.__post_init__()
        return new


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**data)


PRESETS: dict[str, BioMedGPTConfig] = {
    # The released OpenBioMed v1 model: GraphMVP GIN, ESM-2 3B, BioMedGPT-LM-7B (Llama-2-7B shape + [PAD]).
    "biomedgpt-10b": BioMedGPTConfig(
        name="biomedgpt-10b",
        molecule=MoleculeEncoderConfig(num_layer=5, emb_dim=300),
        protein=ProteinEncoderConfig(backend="hf", num_layers=36, hidden_size=2560, num_heads=40),
        lm=LMConfig(
            source="BioMedGPT-LM-7B",  # a folder given to load_official(lm_dir=...)
            dtype="float16",
            hidden_size=4096,
            num_layers=32,
            num_heads=32,
            num_kv_heads=32,
            intermediate_size=11008,
            vocab_size=32001,
        ),
        trained=True,
    ),
    # CPU-sized: same GIN, ESM-2 with the esm2_t6_8M shape, the embedded SmolLM2-135M-Instruct.
    "mini": BioMedGPTConfig(
        name="mini",
        molecule=MoleculeEncoderConfig(num_layer=5, emb_dim=300),
        protein=ProteinEncoderConfig(backend="hf", num_layers=6, hidden_size=320, num_heads=20),
        lm=LMConfig(source="smollm2", hidden_size=576, num_layers=30, num_heads=9, num_kv_heads=3,
                    intermediate_size=1536, vocab_size=49152),
        trained=False,
        retrieval_k=1,
        prompt_format="chatml",
    ),
    # Test-sized: every code path of the big ones, built in well under a second.
    "tiny": BioMedGPTConfig(
        name="tiny",
        molecule=MoleculeEncoderConfig(num_layer=2, emb_dim=32),
        protein=ProteinEncoderConfig(backend="hf", num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64),
        lm=LMConfig(source="tiny", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                    intermediate_size=128),
        max_protein_tokens=128,
        trained=False,
    ),
}


def get_preset(name: str) -> BioMedGPTConfig:
    """A fresh copy of a named preset; an unknown name is a ``ConfigError`` listing the known ones."""
    try:
        return copy.deepcopy(PRESETS[name])
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}") from None
