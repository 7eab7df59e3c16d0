"""Typed trainer configs: ``load_config("lm", "tiny", overrides=["optim.lr=1e-3"])`` → ``LMConfig``.

Why typed: a YAML typo (``lerning_rate``) or a wrong type must fail before hours of training, with a
message naming the key. Every trainer reads one of ``LMConfig``, ``AlignConfig`` or ``QAConfig``; the
shared knobs (batching, optimiser, checkpoints, precision, distribution) live in ``TrainConfig``. They
are the same kind of object as the model's config (``model/config.StrictConfig``, validated by
``model/config.validate_config``), and ``retrieval.enabled`` / ``retrieval.k`` and the ``lora`` block
(``r``, ``alpha``, ``dropout``, ``target_modules``) are spelt as there.

Bundled presets are YAML files named ``<kind>-<name>.yaml`` in ``training/configs/`` (``lm-tiny.yaml``,
``align-mini-cpu.yaml``, ``qa-paper-10b.yaml`` ...). ``NAME_OR_PATH`` is either such a name or a path to
a YAML file. ``--set key=value`` overrides use dotted keys (``optim.lr=2e-5``, ``data.paths=[a.txt]``);
values are parsed as YAML scalars/lists, so ``true``, ``3``, ``1e-4`` and ``[a, b]`` get their types.

Batching follows litgpt: ``global_batch_size = micro_batch_size × grad_accum × world_size``; the
accumulation steps are derived, so the same config gives the same optimisation on 1 or N processes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from biomedgpt.core.errors import ConfigError
from biomedgpt.model.config import LoRAConfig as ModelLoRAConfig
from biomedgpt.model.config import RetrievalConfig as ModelRetrievalConfig
from biomedgpt.model.config import StrictConfig, validate_config

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
KINDS = ("lm", "align", "qa")
PRESETS = ("tiny", "mini-cpu", "paper-10b")


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class OptimConfig(StrictConfig):
    """AdamW with linear warm-up and cosine decay (``transformers.get_cosine_schedule_with_warmup``)."""

    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float | None = Field(1.0, description="max global grad norm; null disables clipping")


class TrainConfig(StrictConfig):
    """Knobs shared by every trainer (see ``training/loop.py``)."""

    kind: Literal["lm", "align", "qa"]
    name: str = "custom"
    seed: int = 0
    run_dir: Path = Path("runs/default")
    micro_batch_size: int = Field(1, ge=1)
    global_batch_size: int = Field(1, ge=1)
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs when set")
    optim: OptimConfig = Field(default_factory=OptimConfig)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    gradient_checkpointing: bool = False
    strategy: Literal["auto", "single", "ddp", "fsdp"] = "auto"
    checkpoint_every: int = Field(100, ge=1, description="optimizer steps between checkpoints")
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)
    resume: bool = Field(True, description="continue from the newest checkpoint in run_dir when present")
    trust_run_dir: bool = Field(False, description="load checkpoints holding pickled objects (run directories from "
                                                   "before issue 13); they can run code: only for run dirs you trust. "
                                                   "Never written to config.yaml")
    progress: bool = True
    save_final_model: bool = True

    def grad_accum(self, world_size: int = 1) -> int:
        """Micro-batches per optimizer step on each process; errors when the batch does not divide."""
        per_step = self.micro_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ConfigError(
                f"global_batch_size={self.global_batch_size} is not a multiple of "
                f"micro_batch_size={self.micro_batch_size} × world_size={world_size}"
            )
        return self.global_batch_size // per_step


class LMDataConfig(StrictConfig):
    paths: list[Path] = Field(default_factory=list, description="raw text corpora (.txt or .jsonl)")
    text_field: str = "text"
    context_length: int = Field(2048, ge=8)
    limit: int | None = Field(None, ge=1, description="read at most this many records (smoke runs)")


class LMConfig(TrainConfig):
    """Incremental causal-LM training (``training/lm.py``)."""

    kind: Literal["lm"] = "lm"
    model: str = Field("tiny", description="load_lm name ('tiny', 'smollm2') or a HF model folder")
    data: LMDataConfig = Field(default_factory=LMDataConfig)


class EvalSliceConfig(StrictConfig):
    """The rows evaluation scores (``eval captioning --data PATH --limit ROWS``): none of their molecules
    trains or serves as a training reference, under any row of the training files (same CID or InChIKey)."""

    path: Path = Field(description="a ChEBI-20 TSV (the test split)")
    rows: int | None = Field(None, ge=1, description="its first ROWS rows (the evaluation slice); null: every row")


class AlignDataConfig(StrictConfig):
    """What alignment trains on (``training/data.py``).

    Molecules: the rows of every file in ``molecule_paths`` (a CID seen twice keeps its first row), less
    the molecules of ``eval_slice`` and the CIDs in ``exclude_ids``; then ``molecule_dev_holdout`` CIDs
    form the dev set. Older configs saying ``molecule_path: FILE`` (one file) and ``molecule_exclude_path:
    FILE`` (every row of FILE held out) are read into this form.
    """

    molecule_paths: list[Path] = Field(default_factory=list, description="ChEBI-20 TSVs (CID, SMILES, description)")
    eval_slice: EvalSliceConfig | None = Field(
        None, description="the evaluation rows: their molecules never train (same CID or InChIKey)")
    exclude_ids: list[str] = Field(default_factory=list, description="more CIDs that never train (explicit)")
    protein_path: Path | None = Field(None, description="UniProtQA JSON (either layout)")
    protein_sequences: Path | None = Field(None, description="sequences.json for the split layout")
    molecule_dev_holdout: int = Field(300, ge=0, description="molecules kept out of training (dev set)")
    protein_train_fraction: float = Field(0.8, gt=0, le=1)
    split_seed: int = 0
    limit_molecules: int | None = Field(None, ge=1)
    limit_proteins: int | None = Field(None, ge=1)
    max_protein_length: int = Field(1022, ge=8, description="residues kept (ESM-2 context)")
    dev_loss_samples: int | None = Field(
        64, ge=1, description="dev examples (a fixed random sample) scored before/after training; null: all"
    )

    @field_validator("exclude_ids", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        """CIDs are ids, not numbers: YAML reads ``[2244]`` as an integer."""
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value] if isinstance(value, list) else value

    @model_validator(mode="before")
    @classmethod
    def _read_old_spelling(cls, data: Any) -> Any:
        """``molecule_path: F`` is ``molecule_paths: [F]`` (null: none); ``molecule_exclude_path: T`` is
        ``eval_slice: {path: T}`` (every row of T held out), as the recipes before issue 15 said."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "molecule_path" in data:
            if data.get("molecule_paths"):
                raise ValueError("give data.molecule_paths (a list) or the older data.molecule_path, not both")
            path = data.pop("molecule_path")
            data["molecule_paths"] = [] if path is None else [path]
        if "molecule_exclude_path" in data:
            if data.get("eval_slice") is not None:
                raise ValueError("give data.eval_slice or the older data.molecule_exclude_path, not both")
            path = data.pop("molecule_exclude_path")
            if path is not None:
                data["eval_slice"] = {"path": path}
        return data


class RetrievalConfig(ModelRetrievalConfig):
    """The model's ``retrieval`` block (``enabled``, ``k``: spelt as in ``BioMedGPTConfig``, where the
    saved model records them) plus where training takes the reference proteins' descriptions from."""

    protein_reference: Literal["answers", "shipped"] = Field(
        "answers",
        description="descriptions of reference proteins: the training answers joined, or the shipped "
        "Swiss-Prot PAIR records (model/retrieval.reference_proteins) restricted to training accessions — "
        "the wording `eval protein-qa --retrieval on` shows",
    )

    def for_model(self) -> ModelRetrievalConfig:
        """The part the trained model keeps in its config (``BioMedGPTConfig.retrieval``)."""
        return ModelRetrievalConfig(enabled=self.enabled, k=self.k)


class AlignLoRAConfig(ModelLoRAConfig):
    """LoRA on the LM during alignment (LLaVA's stage 2; ``model/lora.py``): the model's ``lora`` block
    (``r``, ``alpha``, ``dropout``, ``target_modules``, recorded in the saved model) plus ``enabled``.

    A model that already carries adapters (one trained with LoRA, loaded by name or folder) continues
    them: with ``enabled`` they train, and ``r``, ``alpha`` and ``target_modules`` must be the saved ones;
    without, they stay frozen as part of the LM and are saved again.
    """

    enabled: bool = False

    def for_model(self) -> ModelLoRAConfig:
        """The part the trained model keeps in its config (``BioMedGPTConfig.lora``)."""
        return ModelLoRAConfig(**self.model_dump(exclude={"enabled"}))


class AlignConfig(TrainConfig):
    """Multimodal alignment: LM frozen (or LoRA on it), adaptors trained, encoders per flag (``training/align.py``)."""

    kind: Literal["align"] = "align"
    model: str = Field("tiny", description="load_model name ('tiny', 'mini') or a checkpoint folder")
    train_molecule_encoder: bool = False
    train_protein_encoder: bool = False
    data: AlignDataConfig = Field(default_factory=AlignDataConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    lora: AlignLoRAConfig = Field(default_factory=AlignLoRAConfig)
    prompt_format: Literal["biomedgpt", "chatml"] | None = Field(
        None,
        description="prompt format to train in (model/conversation.py); null: the model's own "
        "(BioMedGPTConfig.prompt_format). The saved model records the one used.",
    )


class QADataConfig(StrictConfig):
    train_path: Path | None = None
    train_format: Literal["medmcqa", "pubmedqa", "medqa"] = "medmcqa"
    eval_path: Path | None = None
    eval_format: Literal["medmcqa", "pubmedqa", "medqa"] = "medmcqa"
    limit_train: int | None = Field(None, ge=1)
    limit_eval: int | None = Field(None, ge=1)
    max_length: int = Field(512, ge=16, description="prompt+answer tokens; longer prompts are cut from the left")


class QAConfig(TrainConfig):
    """MCQA fine-tuning and evaluation (``training/qa.py``)."""

    kind: Literal["qa"] = "qa"
    model: str = Field("tiny", description="load_lm name or a HF model folder")
    data: QADataConfig = Field(default_factory=QADataConfig)
    eval_methods: list[Literal["generate", "loglik"]] = Field(default_factory=lambda: ["loglik"])
    max_new_tokens: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _methods(self) -> "QAConfig":
        if len(set(self.eval_methods)) != len(self.eval_methods):
            raise ValueError("eval_methods lists a method twice")
        return self


CONFIG_TYPES: dict[str, type[TrainConfig]] = {"lm": LMConfig, "align": AlignConfig, "qa": QAConfig}


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=1e-4"`` → ``("optim.lr", 0.0001)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. optim.lr=2e-5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({error})") from None
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string; users mean a number
    return key, value


def resolve_config_path(kind: str, name_or_path: str | Path) -> Path:
    """A bundled preset name (``tiny``) or a YAML path → the YAML file."""
    if kind not in KINDS:
        raise ConfigError(f"unknown trainer {kind!r}; choose one of {', '.join(KINDS)}")
    text = str(name_or_path)
    bundled = CONFIG_DIR / f"{kind}-{text}.yaml"
    if bundled.is_file():
        return bundled
    path = Path(text).expanduser()
    if path.is_file():
        return path
    names = sorted(p.stem[len(kind) + 1 :] for p in CONFIG_DIR.glob(f"{kind}-*.yaml"))
    raise ConfigError(f"config {text!r} is neither a bundled {kind} preset ({', '.join(names)}) nor a YAML file")


def build_config(kind: str, tree: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a plain dict as the config of ``kind``; a wrong key or value is a ``ConfigError``."""
    tree = dict(tree)
    declared = tree.setdefault("kind", kind)
    if declared != kind:
        raise ConfigError(f"{source} is a {declared!r} config, not {kind!r}")
    return validate_config(CONFIG_TYPES[kind], tree, source)


def load_config(kind: str, name_or_path: str | Path = "tiny", overrides: list[str] | None = None) -> TrainConfig:
    """Load a preset or YAML file for trainer ``kind`` and apply ``key=value`` overrides."""
    path = resolve_config_path(kind, name_or_path)
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(tree, key, value)
    return build_config(kind, tree, source=str(path))


def dump_config(config: TrainConfig) -> str:
    """The resolved config as YAML (paths as strings), as written to ``run_dir/config.yaml``."""
    return yaml.safe_dump(config.model_dump(mode="json", exclude={"trust_run_dir"}), sort_keys=False)
