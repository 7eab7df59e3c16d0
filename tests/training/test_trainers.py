"""Each trainer learns (a few steps lower the loss on a fixed batch) and resumes exactly after a kill."""

from __future__ import annotations

import json
import re

import pytest
import torch

from biomedgpt.core.errors import CheckpointError
from biomedgpt.training.align import build_align_data, setup_align
from biomedgpt.training.lm import setup_lm
from biomedgpt.training.loop import Trainer, latest_checkpoint
from biomedgpt.training.qa import setup_qa
from tests.training.helpers import align_config, lm_config, qa_config


class Killed(Exception):
    """Stands in for SIGKILL: raised from the step callback, after the step's checkpoint (if any)."""


def kill_at(step: int):
    def on_step(info):
        if info.step == step:
            raise Killed(step)

    return on_step


def fixed_batch(trainer: Trainer) -> Trainer:
    """Make every optimizer step see the same global batch (a data set of exactly one batch)."""
    trainer.dataset = list(trainer.dataset[: trainer.config.global_batch_size])
    trainer.steps_per_epoch = 1
    return trainer


def enable_dropout(trainer: Trainer, p: float = 0.1) -> None:
    """Attention dropout on, so that the resumed run depends on the restored RNG state."""
    for module in trainer.inner_model.modules():
        if hasattr(module, "attention_dropout"):
            module.attention_dropout = p


SETUPS = {
    "lm": (lm_config, setup_lm, ["optim.lr=0.01", "optim.warmup_steps=0"]),
    "qa": (qa_config, setup_qa, ["optim.lr=0.01", "optim.warmup_steps=0"]),
    "align": (align_config, setup_align, ["optim.lr=0.01", "optim.warmup_steps=0"]),
}
# The tiny LM is random and frozen during alignment: its near-uniform output head caps how far the
# adaptors alone can move the loss, so alignment gets a larger step and a smaller (still strict) bar.
LEARNS = {"lm": ("optim.lr=0.01", 0.05), "qa": ("optim.lr=0.01", 0.05), "align": ("optim.lr=0.1", 0.005)}


def _trainer(kind, run_dir, *extra, on_step=None):
    make_config, setup, base = SETUPS[kind]
    result = setup(make_config(run_dir, *base, *extra), on_step=on_step)
    return result[0]


@pytest.mark.parametrize("kind", ["lm", "qa", "align"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(kind, tmp_path):
    lr, margin = LEARNS[kind]
    trainer = fixed_batch(_trainer(kind, tmp_path / kind, "max_steps=8", "checkpoint_every=100", lr))
    history = trainer.fit()["loss_history"]
    assert len(history) == 8
    assert history[-1] < history[0] - margin, history
    log = [json.loads(line) for line in (tmp_path / kind / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 9))
    assert [r["loss"] for r in log] == pytest.approx(history)


def _optimizer_tensors(trainer):
    state = trainer.optimizer.state_dict()["state"]
    return [(k, name, v) for k in sorted(state) for name, v in sorted(state[k].items())]


@pytest.mark.parametrize("kind", ["lm", "qa", "align"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(kind, tmp_path):
    steps = ["max_steps=5", "checkpoint_every=2"]
    straight = _trainer(kind, tmp_path / "straight", *steps)
    enable_dropout(straight)
    expected = straight.fit()["loss_history"]

    killed = _trainer(kind, tmp_path / "killed", *steps, on_step=kill_at(3))
    enable_dropout(killed)
    with pytest.raises(Killed):
        killed.fit()
    assert latest_checkpoint(tmp_path / "killed").name == "step-000002"  # step 3 was lost with the kill

    resumed = _trainer(kind, tmp_path / "killed", *steps)
    enable_dropout(resumed)
    result = resumed.fit()
    assert result["resumed_from"].endswith("step-000002")
    assert result["loss_history"] == expected[2:]  # steps 3, 4, 5 exactly as the uninterrupted run
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(a, b), name
    # buffers too: the trained GIN's BatchNorm running statistics must survive the kill
    for (name, a), (_, b) in zip(straight.model.named_buffers(), resumed.model.named_buffers()):
        assert torch.equal(a, b), name
    for (k1, n1, a), (k2, n2, b) in zip(_optimizer_tensors(straight), _optimizer_tensors(resumed)):
        assert (k1, n1) == (k2, n2) and torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    assert resumed.scheduler.state_dict()["last_epoch"] == straight.scheduler.state_dict()["last_epoch"] == 5
    log = [json.loads(line) for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5]  # the lost step 3 is logged once


def test_partial_checkpoints_are_ignored_and_old_ones_pruned(tmp_path):
    trainer = _trainer("lm", tmp_path, "max_steps=4", "checkpoint_every=1", "keep_checkpoints=2")
    trainer.fit()
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step-000003", "step-000004"]
    (folder / ".step-000009.partial").mkdir()  # a kill in the middle of a checkpoint write
    (folder / "step-000010").mkdir()  # renamed but empty: never produced by save_checkpoint, still refused
    assert latest_checkpoint(tmp_path).name == "step-000004"


def test_resume_refuses_a_different_batch_size(tmp_path):
    _trainer("lm", tmp_path, "max_steps=2", "checkpoint_every=1").fit()
    other = _trainer("lm", tmp_path, "max_steps=3", "global_batch_size=8")
    with pytest.raises(CheckpointError, match="global_batch_size=4"):
        other.fit()


def test_extending_a_finished_run_continues_the_schedule(tmp_path):
    _trainer("lm", tmp_path, "max_steps=2", "checkpoint_every=1").fit()
    longer = _trainer("lm", tmp_path, "max_steps=4", "optim.warmup_steps=0")
    result = longer.fit()
    assert result["steps"] == 4 and len(result["loss_history"]) == 2
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert log[2]["lr"] > 0  # the 4-step cosine, not the finished 2-step one


def test_alignment_freezes_the_lm_and_respects_encoder_flags(tmp_path):
    trainer = _trainer("align", tmp_path, "max_steps=2", "train_molecule_encoder=true", "train_protein_encoder=false")
    model = trainer.inner_model
    lm_before = {k: v.clone() for k, v in model.llm.state_dict().items()}
    prot_before = {k: v.clone() for k, v in model.prot_structure_encoder.state_dict().items()}
    gin_before = {k: v.clone() for k, v in model.mol_structure_encoder.state_dict().items()}
    adaptor_before = model.proj_prot.weight.clone()
    trainer.fit()
    assert all(torch.equal(v, model.llm.state_dict()[k]) for k, v in lm_before.items())
    assert all(torch.equal(v, model.prot_structure_encoder.state_dict()[k]) for k, v in prot_before.items())
    assert any(not torch.equal(v, model.mol_structure_encoder.state_dict()[k]) for k, v in gin_before.items())
    assert not torch.equal(adaptor_before, model.proj_prot.weight)
    saved = torch.load(latest_checkpoint(tmp_path) / "state.pt", weights_only=True)["model"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    gin_statistics = {f"mol_structure_encoder.{n}" for n, _ in model.mol_structure_encoder.named_buffers()}
    assert gin_statistics and all(".batch_norms." in k for k in gin_statistics)
    assert set(saved) == trainable | gin_statistics  # trained weights plus the trained GIN's BatchNorm statistics
    assert not any(k.startswith(("llm.", "prot_structure_encoder.")) for k in saved)


def test_alignment_data_mixes_kinds_and_retrieves_leaving_self_out(tmp_path):
    config = align_config(tmp_path)
    data = build_align_data(config)
    assert data.counts["train_molecules"] > 0 and data.counts["train_proteins"] > 0
    assert data.counts["dev_molecules"] == config.data.molecule_dev_holdout
    train_keys = {e.key for e in data.train}
    assert not train_keys & {e.key for e in data.dev}  # no dev CID/accession is trained on
    for example in data.train:
        assert "###Human:" in example.prompt and example.answer  # the tiny model keeps the Table 1 format
        neighbours = _neighbours(example.prompt)
        assert neighbours and example.key not in neighbours  # leave-self-out
        assert set(neighbours) <= train_keys  # the index holds training samples only, never dev ones
    off = build_align_data(align_config(tmp_path, "retrieval.enabled=false"))
    assert not any("Similar known" in e.prompt for e in off.train)


def _neighbours(prompt: str) -> list[str]:
    """The ids listed in a prompt's retrieval block ("1. CID 2244 (..." / "2. P05067 Name (...")."""
    return [m.group(1) for m in re.finditer(r"^\d+\. (?:CID )?(\S+)", prompt, flags=re.MULTILINE)]


def test_shipped_protein_references_hold_training_accessions_only(tmp_path):
    data = build_align_data(align_config(tmp_path, "retrieval.protein_reference=shipped"))
    train_accessions = {e.key for e in data.train if e.kind == "protein"}
    proteins = [e for e in data.train if e.kind == "protein"]
    assert proteins and all("Similar known proteins" in e.prompt for e in proteins)
    for example in proteins:
        neighbours = _neighbours(example.prompt)
        assert neighbours and example.key not in neighbours  # leave-self-out
        assert set(neighbours) <= train_accessions - {example.key}  # the index holds training proteins only


def test_lm_corpus_is_packed_once_and_reused(tmp_path):
    first = _trainer("lm", tmp_path, "max_steps=1")
    cached = list((tmp_path / "data").glob("packed-*.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = _trainer("lm", tmp_path, "max_steps=1")
    assert cached[0].stat().st_mtime_ns == stamp  # loaded, not packed again
    assert len(again.dataset) == len(first.dataset)
    assert all(torch.equal(a, b) for a, b in zip(first.dataset, again.dataset))
    assert max(len(seq) for seq in first.dataset) <= first.config.data.context_length
    _trainer("lm", tmp_path, "max_steps=1", "data.context_length=64")  # other packing → its own cache file
    assert len(list((tmp_path / "data").glob("packed-*.pt"))) == 2


def test_a_diverged_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    from biomedgpt.training.config import LMConfig
    from biomedgpt.training.loop import TrainingDiverged

    model = torch.nn.Linear(2, 1)
    data = [torch.tensor([1.0, float(i)]) for i in range(8)]
    config = LMConfig(run_dir=tmp_path, micro_batch_size=2, global_batch_size=2, max_steps=4, checkpoint_every=1, progress=False)

    def loss_fn(m, batch):  # finite for two steps, then the weights "blow up"
        out = m(batch).mean()
        return out * float("inf") if trainer.step >= 2 else out.pow(2)

    trainer = Trainer(config, model, data, torch.stack, loss_fn)
    with pytest.raises(TrainingDiverged, match="step 3"):
        trainer.fit()
    assert latest_checkpoint(tmp_path).name == "step-000002"


def test_gradient_checkpointing_and_bf16_autocast_keep_the_numbers(tmp_path):
    plain = _trainer("lm", tmp_path / "plain", "max_steps=2").fit()["loss_history"]
    ckpt = _trainer("lm", tmp_path / "ckpt", "max_steps=2", "gradient_checkpointing=true")
    assert ckpt.inner_model.is_activation_checkpointing
    assert ckpt.fit()["loss_history"] == pytest.approx(plain, rel=1e-5)  # recomputation, same math
    bf16 = _trainer("lm", tmp_path / "bf16", "max_steps=2", "precision=bf16")
    result = bf16.fit()
    assert result["bf16"] and result["loss_history"] == pytest.approx(plain, rel=2e-2)


def test_test_split_molecules_never_train_even_as_another_validation_row(tmp_path):
    from tests.training.helpers import CHEBI

    rows = CHEBI.read_text().splitlines()
    header, first, second = rows[0], rows[1].split("\t"), rows[2].split("\t")
    test_file = tmp_path / "test.txt"
    # the first molecule under another CID (same InChIKey), and the second row's CID with another structure
    test_file.write_text(f"{header}\n999999999\t{first[1]}\tsame molecule\n{second[0]}\tC\tmethane\n")
    plain = build_align_data(align_config(tmp_path, "retrieval.enabled=false", "data.molecule_dev_holdout=0"))
    excluded = build_align_data(align_config(tmp_path, "retrieval.enabled=false", "data.molecule_dev_holdout=0",
                                             f"data.molecule_exclude_path={test_file}"))
    plain_keys = {e.key for e in plain.train if e.kind == "molecule"}
    kept = {e.key for e in excluded.train if e.kind == "molecule"}
    assert {first[0], second[0]} <= plain_keys
    assert plain_keys - kept == {first[0], second[0]}


def test_every_molecule_trains_but_the_evaluation_slice_and_the_excluded_ids(tmp_path):
    from tests.training.helpers import CHEBI

    header, *rows = CHEBI.read_text().splitlines()
    rows = [r.split("\t") for r in rows]
    more = tmp_path / "test.txt"
    # the evaluation slice is this file's first 2 rows: a new molecule, and the sample's first molecule under
    # a new CID; the third row is outside the slice and trains
    more.write_text(f"{header}\n900000001\tCCCCCCCCCCCCO\tdodecanol\n900000002\t{rows[0][1]}\tsame as row 1\n"
                    "900000003\tCCCCCCCCCCCCCCO\ttetradecanol\n")
    config = align_config(tmp_path, "retrieval.enabled=false", "data.molecule_dev_holdout=0",
                          f"data.molecule_paths=[{CHEBI}, {more}]", f"data.eval_slice.path={more}",
                          "data.eval_slice.rows=2", f"data.exclude_ids=[{rows[1][0]}]", "data.limit_molecules=null")
    trained = {e.key for e in build_align_data(config).train if e.kind == "molecule"}
    assert trained == {r[0] for r in rows[2:]} | {"900000003"}


def test_a_dev_molecule_never_trains_under_another_cid(tmp_path):
    from biomedgpt.training.data import molecule_keys, molecule_split

    data = tmp_path / "molecules.txt"
    data.write_text("CID\tSMILES\tdescription\n1\tCCO\tethanol\n2\tOCC\tethanol again\n3\tCCCO\tpropanol\n"
                    "4\tCCCCO\tbutanol\n")
    dev_was_ethanol = False
    for seed in range(8):
        config = align_config(tmp_path, f"data.molecule_paths=[{data}]", "data.molecule_dev_holdout=1",
                              f"data.split_seed={seed}")
        train, dev = molecule_split(config)
        keys = molecule_keys(train + dev)
        assert len(dev) == 1 and not {keys[r.cid] for r in train} & {keys[r.cid] for r in dev}
        dev_was_ethanol |= dev[0].cid in {"1", "2"}
    assert dev_was_ethanol  # the case that matters happened
