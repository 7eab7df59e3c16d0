"""Multimodal alignment: ``biomedgpt train align --config mini-cpu`` or ``train_align(load_config("align", "tiny"))``.

Stage 2 of the paper: the LM is frozen; the adaptors (``proj_mol``, ``proj_prot``) are trained, and
each structure encoder (GIN, ESM-2) is trained or frozen by ``train_molecule_encoder`` /
``train_protein_encoder``. With ``lora.enabled`` the LM learns too, through LoRA adapters on its
attention and MLP projections (LLaVA's stage 2; peft layers, ``model/lora.py``): a frozen 135M LM can
only copy the neighbour it is shown, an adapted one can learn to edit it. A model that already carries
adapters (the shipped mini after a LoRA run) continues them, so a run can start from the last exported
weights; the saved model holds them in ``lora.safetensors`` and ``config.lora``, and loading merges them. Every sample is one prompt of ``model/prompts.structure_prompt`` (the builder
that evaluation, ``BioMedGPT.ask`` and the BioMedGPT tool use too) in the model's prompt format (the paper's Table 1 template, or ChatML for a frozen instruction-tuned LM such
as the mini model's SmolLM2; ``prompt_format`` overrides it and the saved model records it), and the
loss covers the answer tokens plus EOS only (``BioMedGPT.forward`` with ``answers``).
Molecule samples (ChEBI-20: caption = the description) and protein samples (UniProtQA pairs, either
layout) are mixed in one shuffled run.

Splits (all deterministic; ``training/data.py``): molecules of ``data.molecule_paths`` less the
evaluation slice's molecules (``data.eval_slice``, same CID or InChIKey) and ``data.exclude_ids``, and
less a dev hold-out of CIDs; proteins by the 80/20 accession split (``core/datasets.split_accessions``)
whose train part the shipped protein index holds.

Retrieval context (``retrieval.enabled``): an index is built from the *training* samples only (never
dev/test; proteins described by their joined training answers, or by the shipped Swiss-Prot PAIR
records of the training accessions with ``retrieval.protein_reference=shipped``, the wording that
``eval protein-qa --retrieval on`` uses), and each sample's prompt gets the context block of its
``retrieval.k`` nearest neighbours under ``model/prompts``' one exclusion rule (its own CID/accession and
identical structures excluded). Contexts are
computed once at set-up, so they are identical on every epoch, process and resume. The mini model
needs this block: a 135M LM cannot caption from structure features alone.

Outputs in ``run_dir``: ``config.yaml``, ``log.jsonl``, ``checkpoints/``, ``metrics.json`` (including
the dev loss) and ``model/`` (``model/checkpoint.save_pretrained``; ``load_model(run_dir / "model")``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from biomedgpt.core.chem import try_parse_smiles
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.core.files import atomic_write_text
from biomedgpt.model import load_model
from biomedgpt.model.checkpoint import save_pretrained
from biomedgpt.model.conversation import CAPTION_QUESTION  # the question ``eval captioning`` asks too
from biomedgpt.model.lora import add_lora, lora_parameters, set_lora_dropout
from biomedgpt.model.prompts import structure_prompt
from biomedgpt.model.retrieval import MoleculeIndex, ProteinIndex
from biomedgpt.training.config import AlignConfig
from biomedgpt.training.data import molecule_split, protein_references, protein_split
from biomedgpt.training.distributed import DistEnv, init_distributed, resolve_strategy
from biomedgpt.training.loop import StepInfo, Trainer, latest_checkpoint, seed_everything



@dataclass(frozen=True)
class AlignExample:
    """One templated sample: ``prompt`` holds the structure placeholder; ``answer`` is the target."""

    kind: str  # "molecule" | "protein"
    key: str  # CID or accession
    prompt: str
    answer: str
    smiles: str | None = None
    sequence: str | None = None


@dataclass
class AlignData:
    """Training examples, the dev examples scored for ``dev_loss`` (a fixed sample), and counts."""

    train: list[AlignExample]
    dev: list[AlignExample]
    counts: dict[str, int]


def build_align_data(config: AlignConfig, prompt_format: str = "biomedgpt", tokenizer: Any = None) -> AlignData:
    """Read, split, (optionally) retrieve and template every sample in ``prompt_format``: each prompt is
    ``model/prompts.structure_prompt``'s (the one evaluation, ``ask`` and the tool build), its context
    drawn from an index of the training rows with the sample's own CID/accession excluded."""
    mol_train, mol_dev = molecule_split(config)
    prot_train, prot_dev = protein_split(config)
    if not mol_train and not prot_train:
        raise ConfigError("align: no training data; set data.molecule_paths and/or data.protein_path")
    k = config.retrieval.k if config.retrieval.enabled else 0
    mol_index = prot_index = None
    if k and mol_train:
        mol_index = MoleculeIndex.build([(r.cid, r.smiles, r.description) for r in mol_train])
    if k and prot_train:
        prot_index = ProteinIndex.build(protein_references(prot_train, config.retrieval.protein_reference))

    def molecule_example(r: Any) -> AlignExample | None:
        try:
            prompt = structure_prompt(prompt_format, "molecule", CAPTION_QUESTION, structure=r.smiles,
                                      k=k if mol_index is not None else 0, index=mol_index, query_id=r.cid,
                                      tokenizer=tokenizer).text
        except InputError:  # RDKit cannot parse this SMILES: the model could not encode it either
            return None
        return AlignExample("molecule", r.cid, prompt, r.description.strip(), smiles=r.smiles)

    def protein_example(r: Any) -> AlignExample:
        prompt = structure_prompt(prompt_format, "protein", r.question, structure=r.sequence,
                                  k=k if prot_index is not None else 0, index=prot_index, query_id=r.accession,
                                  tokenizer=tokenizer).text
        return AlignExample("protein", r.accession, prompt, r.answer.strip(), sequence=r.sequence)

    def valid_smiles(r: Any) -> bool:
        return try_parse_smiles(r.smiles) is not None

    mol_train = [r for r in mol_train if valid_smiles(r)]
    mol_dev = [r for r in mol_dev if valid_smiles(r)]
    train = [e for e in map(molecule_example, mol_train) if e is not None] + [protein_example(r) for r in prot_train]
    dev = [e for e in map(molecule_example, mol_dev) if e is not None] + [protein_example(r) for r in prot_dev]
    counts = {
        "train_molecules": sum(e.kind == "molecule" for e in train),
        "train_proteins": sum(e.kind == "protein" for e in train),
        "dev_molecules": sum(e.kind == "molecule" for e in dev),
        "dev_proteins": sum(e.kind == "protein" for e in dev),
    }
    if config.data.dev_loss_samples is not None and len(dev) > config.data.dev_loss_samples:
        dev = random.Random(config.data.split_seed).sample(dev, config.data.dev_loss_samples)
        counts["dev_loss_samples"] = len(dev)
    return AlignData(train, dev, counts)


def collate_align(examples: Sequence[AlignExample]) -> dict[str, list[Any]]:
    """Strings for ``BioMedGPT.forward``: prompts, one molecule/protein (or None) per prompt, answers."""
    return {
        "prompts": [e.prompt for e in examples],
        "molecules": [e.smiles for e in examples],
        "proteins": [e.sequence for e in examples],
        "answers": [e.answer for e in examples],
    }


def align_loss(model: torch.nn.Module, batch: dict[str, list[Any]]) -> torch.Tensor:
    """Answer-token (+ EOS) cross-entropy of a mixed molecule/protein batch."""
    return model(batch["prompts"], molecules=batch["molecules"], proteins=batch["proteins"], answers=batch["answers"]).loss


def freeze_for_alignment(model: Any, config: AlignConfig) -> dict[str, int]:
    """LM frozen, except its LoRA adapters with ``lora.enabled``; adaptors trainable; encoders per config.
    Returns trainable parameter counts (``llm``: the adapters' with LoRA, else 0)."""
    for p in model.llm.parameters():
        p.requires_grad_(False)
    for p in lora_parameters(model.llm):
        p.requires_grad_(config.lora.enabled)
    for p in model.mol_structure_encoder.parameters():
        p.requires_grad_(config.train_molecule_encoder)
    for p in model.prot_structure_encoder.parameters():
        p.requires_grad_(config.train_protein_encoder)
    for p in [*model.proj_mol.parameters(), *model.proj_prot.parameters()]:
        p.requires_grad_(True)
    parts = {
        "llm": model.llm,
        "mol_structure_encoder": model.mol_structure_encoder,
        "prot_structure_encoder": model.prot_structure_encoder,
        "proj_mol": model.proj_mol,
        "proj_prot": model.proj_prot,
    }
    return {name: sum(p.numel() for p in part.parameters() if p.requires_grad) for name, part in parts.items()}


def attach_lora(model: Any, config: AlignConfig) -> None:
    """Give the LM the LoRA layers the run trains or carries (module doc): fresh adapters with
    ``lora.enabled`` on a model without any; a model loaded with adapters (``load_model(...,
    merge_lora=False)``) keeps them, and with ``lora.enabled`` their shape must be the config's.
    ``model.config.lora`` then records what the saved model holds."""
    saved = model.config.lora
    wanted = config.lora.for_model()
    if saved is None:
        if config.lora.enabled:
            add_lora(model.llm, wanted)
            model.config.lora = wanted
        return
    if not config.lora.enabled:
        return  # carried, frozen, saved again as they are
    differing = [f"{name}: saved {getattr(saved, name)!r}, config {getattr(wanted, name)!r}"
                 for name in ("r", "alpha", "target_modules") if getattr(saved, name) != getattr(wanted, name)]
    if differing:
        raise ConfigError(f"model {config.model!r} carries LoRA adapters of another shape ({'; '.join(differing)}); "
                          "set the lora block to the saved values or start from a model without adapters")
    set_lora_dropout(model.llm, wanted.dropout)
    model.config.lora = wanted


def load_align_model(config: AlignConfig) -> Any:
    """The BioMedGPT to align, in fp32 (``biomedgpt.model.load_model``: a preset or a saved folder; saved
    LoRA adapters unmerged), with the LoRA layers of ``attach_lora``."""
    model = load_model(config.model, dtype=torch.float32, merge_lora=False)  # fp32 master weights; bf16 via autocast/FSDP
    if config.prompt_format is not None:
        model.config.prompt_format = config.prompt_format
    if config.retrieval.enabled:
        model.config.retrieval.k = config.retrieval.k
    attach_lora(model, config)
    if config.gradient_checkpointing:
        model.llm.activation_checkpointing_enable({"use_reentrant": False})
        model.llm.config.use_cache = False
    return model


def setup_align(
    config: AlignConfig,
    env: DistEnv | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> tuple[Trainer, AlignData, dict[str, int]]:
    """Model, data and ``Trainer``; returns ``(trainer, data, trainable_counts)``."""
    env = env or init_distributed()
    if config.lora.enabled and config.optim.grad_clip is not None and resolve_strategy(config.strategy, env) == "fsdp":
        # the LoRA weights are sharded with their decoder layers, the encoders and adaptors are not, and
        # training/loop.py clips one norm over both (torch refuses to mix DTensors and tensors there)
        raise ConfigError("lora.enabled under FSDP needs optim.grad_clip=null for now (one gradient norm over "
                          "sharded adapters and replicated encoders); DDP and one process clip as usual")
    seed_everything(config.seed)
    model = load_align_model(config)
    trainable = freeze_for_alignment(model, config)
    data = build_align_data(config, model.config.prompt_format, model.tokenizer)
    trainer = Trainer(config, model, data.train, collate_align, align_loss, env=env, on_step=on_step)
    return trainer, data, trainable


@torch.no_grad()
def dev_loss(model: Any, examples: Sequence[AlignExample], batch_size: int, progress: bool = False) -> float | None:
    """Mean answer loss over ``examples`` (per batch, then averaged), or None without examples."""
    if not examples:
        return None
    was_training = model.training
    model.eval()
    losses = []
    for start in tqdm(range(0, len(examples), batch_size), desc="dev loss", unit="batch", disable=not progress):
        losses.append(float(align_loss(model, collate_align(examples[start : start + batch_size]))))
    model.train(was_training)
    return sum(losses) / len(losses)


def save_aligned_model(trainer: Trainer, config: AlignConfig, folder: Path) -> Path:
    """Write the aligned model with ``model/checkpoint.save_pretrained`` (rank 0; atomic there)."""
    state = trainer.full_model_state()  # collective under FSDP
    model = trainer.inner_model
    if trainer.env.is_main:
        if trainer.strategy == "fsdp":  # sharded in place: rebuild a plain copy holding the gathered weights
            model = load_align_model(config.model_copy(update={"gradient_checkpointing": False}))
            model.load_state_dict(state)
        model.config.trained = True
        model.config.retrieval = config.retrieval.for_model()
        save_pretrained(model, folder)  # writes a temporary folder and renames it
    return folder


def _dev_loss_before(trainer: Trainer, data: AlignData, config: AlignConfig) -> float | None:
    """The dev loss of the untrained adaptors, computed once per run (kept in ``dev_loss_before.json``)."""
    path = Path(config.run_dir) / "dev_loss_before.json"
    if config.resume and path.is_file() and latest_checkpoint(config.run_dir) is not None:
        return json.loads(path.read_text())["dev_loss"]
    value = dev_loss(trainer.inner_model, data.dev, config.micro_batch_size, config.progress and trainer.env.is_main)
    if trainer.env.is_main:
        atomic_write_text(path, json.dumps({"dev_loss": value}) + "\n")
    return value


def train_align(config: AlignConfig, on_step: Callable[[StepInfo], None] | None = None) -> dict[str, Any]:
    """Align, measure the dev loss, save ``run_dir/model`` and ``metrics.json``; returns the metrics."""
    trainer, data, trainable = setup_align(config, on_step=on_step)
    before = _dev_loss_before(trainer, data, config)
    metrics: dict[str, Any] = dict(trainer.fit())
    metrics.update(
        {
            **data.counts,
            "trainable_parameters": trainable,
            "retrieval": config.retrieval.enabled,
            "dev_loss_before": before,
            "dev_loss": dev_loss(trainer.inner_model, data.dev, config.micro_batch_size, config.progress and trainer.env.is_main),
        }
    )
    if config.save_final_model:
        metrics["model_dir"] = str(save_aligned_model(trainer, config, Path(config.run_dir) / "model"))
    trainer.write_metrics(metrics)
    return metrics
