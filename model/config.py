"""Typed model configurations and named presets: ``get_preset("mini")``, ``BioMedGPTConfig.from_json(text)``.

Why one typed object with presets: the three shapes we ship (the released ``biomedgpt-10b``, the
CPU-sized ``mini`` and the test-sized ``tiny``) differ only in sizes and the LM source, so one typed
object describes each and round-trips through the JSON ``config.json`` of our own checkpoints. No size
is a scattered constant: every module reads it from here.

This is also the project's one config system: ``StrictConfig`` (pydantic; unknown keys, wrong types and
out-of-range values are errors, assignments are validated too) is the base of the model configs here
and of the trainer configs in ``training/config.py``, and ``validate_config`` turns pydantic's errors
into one ``ConfigError`` line naming each bad key. The retrieval fields are spelt the same in both:
``retrieval.enabled`` and ``retrieval.k`` (``RetrievalConfig``); saved configs of earlier releases,
which say ``retrieval: true`` and ``retrieval_k: 1``, are read into that form. ``lora`` (``LoRAConfig``)
records the LoRA adapters a model trained on its LM (issue 15); configs without it load as before.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from biomedgpt.core.errors import ConfigError

Dtype = Literal["float32", "float16", "bfloat16"]


class StrictConfig(BaseModel):
    """The base of every config: unknown keys are errors and assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _known_fields(cls: type[BaseModel], path: tuple[Any, ...]) -> list[str] | None:
    """The field names of the config class found at ``path`` (nested configs), or None."""
    for part in path:
        field = cls.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        cls = annotation
    return sorted(cls.model_fields)


def describe_errors(error: ValidationError, cls: type[BaseModel] | None = None) -> str:
    """Pydantic's errors as ``key.path: what is wrong`` clauses joined by ``; `` (an unknown key lists
    the known ones when ``cls`` is given)."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            known = _known_fields(cls, item["loc"][:-1]) if cls is not None else None
            parts.append(f"{where}: unknown field" + (f" (known: {', '.join(known)})" if known else ""))
        else:
            parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def validate_config(cls: type[BaseModel], data: Any, where: str = "config") -> Any:
    """``cls.model_validate(data)``; anything wrong is a ``ConfigError`` naming ``where`` and each key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{where}: {describe_errors(error, cls)}") from None


class MoleculeEncoderConfig(StrictConfig):
    """The GraphMVP / pretrain-gnns GIN: per-atom features of width ``emb_dim``."""

    num_layer: int = Field(5, ge=2)
    emb_dim: int = Field(300, ge=1)
    drop_ratio: float = Field(0.0, ge=0, lt=1)
    JK: Literal["last", "concat", "max", "sum"] = "last"


class ProteinEncoderConfig(StrictConfig):
    """ESM-2 sizes and back end ("hf": transformers ``EsmModel``; "fair": fair-esm ``ESM2``)."""

    backend: Literal["hf", "fair"] = "hf"
    num_layers: int = Field(6, ge=1)
    hidden_size: int = Field(320, ge=1)
    num_heads: int = Field(20, ge=1)
    intermediate_size: int | None = Field(None, ge=1, description="None: 4 x hidden_size, as in every ESM-2")

    @property
    def ffn_size(self) -> int:
        return self.intermediate_size or 4 * self.hidden_size


class LMConfig(StrictConfig):
    """The language model: ``source`` is "smollm2" (embedded), "tiny" (built for tests) or a folder path.

    The size fields describe the shape: they build the ``tiny`` LM and document the 10B one
    (whose real shape is read from the BioMedGPT-LM-7B folder's config.json).
    """

    source: str = "smollm2"
    dtype: Dtype | None = Field(
        None, description="None: float32 on CPU, bfloat16 on CUDA")
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    seed: int = Field(0, description="initialisation of the tiny LM")


class RetrievalConfig(StrictConfig):
    """The "similar known molecules/proteins" context block in the prompt: whether a model was trained
    (and so is asked) with it, and how many nearest references it holds (1: the nearest one, in full)."""

    enabled: bool = False
    k: int = Field(3, ge=1)


#: SmolLM2 / Llama attention and MLP projections: every linear layer of a decoder block
LLAMA_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoRAConfig(StrictConfig):
    """LoRA adapters on the LM's linear layers (``model/lora.py``): ``W + (B @ A) · alpha / r``.

    Why in the model config: a model trained with LoRA ships its adapters (``lora.safetensors``, a few MB)
    instead of the LM (270 MB for SmolLM2), and loading must know the rank and scale to merge them;
    ``dropout`` is the training-time value, recorded for the record (it does nothing at inference).
    """

    r: int = Field(16, ge=1, description="rank of A (r x in) and B (out x r)")
    alpha: float = Field(32.0, gt=0, description="scale numerator: the delta is (B @ A) * alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA branch's input while training")
    target_modules: list[str] = Field(
        default_factory=lambda: list(LLAMA_LORA_TARGETS),
        min_length=1,
        description="names of the LM's nn.Linear modules that get adapters (peft's target_modules: a module "
        "matches when its name ends with one of them)",
    )

    @property
    def scaling(self) -> float:
        """peft's ``lora_alpha / r`` (plain LoRA; no rsLoRA)."""
        return self.alpha / self.r


class BioMedGPTConfig(StrictConfig):
    """Everything needed to rebuild a BioMedGPT model; ``trained`` says whether encoders/adaptors are trained."""

    name: str = "mini"
    molecule: MoleculeEncoderConfig = Field(default_factory=MoleculeEncoderConfig)
    protein: ProteinEncoderConfig = Field(default_factory=ProteinEncoderConfig)
    lm: LMConfig = Field(default_factory=LMConfig)
    max_protein_tokens: int = Field(1024, ge=3, le=1024,
                                    description="ESM-2 positions incl. BOS and EOS: at most 1022 residues")
    on_too_long: Literal["truncate", "error"] = "truncate"
    pad_token: str = Field("[PAD]", description="added when the tokenizer has none (the 10B vocabulary is 32000 + [PAD])")
    trained: bool = False
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    # "biomedgpt": the released chat format and the paper's Table 1 templates (the 10B model was tuned on
    # them); "chatml": the LM tokenizer's own chat template. A frozen LM only follows the format it was
    # instruction-tuned on, so the mini model (frozen SmolLM2-Instruct) is trained and asked in ChatML.
    prompt_format: Literal["biomedgpt", "chatml"] = "biomedgpt"
    seed: int = Field(0, description="initialisation of untrained encoders and adaptors")
    # None: the LM is its source's, unchanged (every release before issue 15). Set: the saved folder holds LoRA
    # adapters of the LM (lora.safetensors) that loading merges into its weights (model/lora.py).
    lora: LoRAConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_old_retrieval_spelling(cls, data: Any) -> Any:
        """Configs saved before the spelling was unified say ``retrieval: true`` and ``retrieval_k: 1``."""
        if isinstance(data, dict) and not isinstance(data.get("retrieval", {}), (dict, BaseModel)):
            data = dict(data)
            retrieval = {"enabled": data.pop("retrieval")}
            if "retrieval_k" in data:
                retrieval["k"] = data.pop("retrieval_k")
            data["retrieval"] = retrieval
        elif isinstance(data, dict) and "retrieval_k" in data and "retrieval" not in data:
            data = dict(data)
            data["retrieval"] = {"k": data.pop("retrieval_k")}
        return data

    @property
    def max_residues(self) -> int:
        """Residues that fit once ESM-2's BOS and EOS are added."""
        return self.max_protein_tokens - 2

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BioMedGPTConfig:
        return validate_config(cls, data, "model config")

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
        """A validated deep copy with top-level fields changed."""
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            raise ConfigError(f"BioMedGPTConfig has no field {', '.join(map(repr, unknown))}")
        data = self.to_dict()
        data.update({k: v.model_dump() if isinstance(v, BaseModel) else copy.deepcopy(v) for k, v in changes.items()})
        return self.from_dict(data)


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
        retrieval=RetrievalConfig(enabled=False, k=1),
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
        return PRESETS[name].model_copy(deep=True)
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}") from None
