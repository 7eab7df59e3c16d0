"""Multimodal alignment: ``biomedgpt train align --config mini-cpu`` or ``train_align(load_config("align", "tiny"))``.

Stage 2 of the paper: the LM is frozen; the adaptors (``proj_mol``, ``proj_prot``) are trained, and
each structure encoder (GIN, ESM-2) is trained or frozen by ``train_molecule_encoder`` /
``train_protein_encoder``. Every sample is one prompt of ``model/prompts.structure_prompt`` (the builder
that evaluation, ``BioMedGPT.ask`` and the BioMedGPT tool use too) in the model's prompt format (the paper's Table 1 template, or ChatML for a frozen instruction-tuned LM such
as the mini model's SmolLM2; ``prompt_format`` overrides it and the saved model records it), and the
loss covers the answer tokens plus EOS only (``BioMedGPT.forward`` with ``answers``).
Molecule samples (ChEBI-20: caption = the description) and protein samples (UniProtQA pairs, either
layout) are mixed in one shuffled run.

Splits (all deterministic; ``training/data.py``): molecules less the ChEBI-20 test molecules
(``data.molecule_exclude_path``) and less a dev hold-out of CIDs; proteins by the 80/20 accession split
(``core/datasets.split_accessions``) whose train part the shipped protein index holds.

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
from biomedgpt.model.prompts import structure_prompt
from biomedgpt.model.retrieval import MoleculeIndex, ProteinIndex
from biomedgpt.training.config import AlignConfig
from biomedgpt.training.data import molecule_split, protein_references, protein_split
from biomedgpt.training.distributed import DistEnv, init_distributed
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
        raise ConfigError("align: no training data; set data.molecule_path and/or data.protein_path")
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
    """LM frozen; adaptors trainable; encoders per config. Returns trainable parameter counts."""
    for p in model.llm.parameters():
        p.requires_grad_(False)
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


def load_align_model(config: AlignConfig) -> Any:
    """The BioMedGPT to align, in fp32 (``biomedgpt.model.load_model``: a preset or a saved folder)."""
    model = load_model(config.model, dtype=torch.float32)  # fp32 master weights; bf16 via autocast/FSDP
    if config.prompt_format is not None:
        model.config.prompt_format = config.prompt_format
    if config.retrieval.enabled:
        model.config.retrieval.k = config.retrieval.k
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
