"""Speed of the BioMedGPT model on CPU: ``python bench/model_speed.py --shared ../shared [--quick]`` prints one JSON object.

What it measures, all in one run so the ratios compare like with like:

- molecules featurized (RDKit → PyG graph) and GIN-encoded (mini preset: 300 wide, 5 layers) per second, on
  the 6,101 ChEBI-20 validation + test SMILES cycled to 10,000, batched, against a naive loop that does one
  molecule at a time (on a prefix, for time);
- the single-core RDKit parse rate (``MolFromSmiles`` alone): featurization cannot beat it;
- featurization alone (no GIN), to show where the time goes;
- mini-model (SmolLM2-135M) greedy generation tokens/s with a molecule prompt vs the same LM on a text-only
  prompt of the same number of positions: the ratio is the cost of splicing the structure in.

ChEBI-20 rows are read by ``core/datasets.read_chebi20`` (which un-escapes the ``\\\\`` of cis/trans bonds).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from itertools import cycle, islice
from pathlib import Path

import torch
from rdkit import Chem, RDLogger

from biomedgpt.core.datasets import read_chebi20
from biomedgpt.model import load_model
from biomedgpt.model.conversation import chat_prompt
from biomedgpt.model.molecule import featurize_smiles


def read_chebi_smiles(shared: Path) -> list[str]:
    """The SMILES of ChEBI-20 validation + test (``core/datasets.read_chebi20``)."""
    folder = shared / "datasets" / "chebi20"
    smiles: list[str] = []
    for name in ("validation.txt", "test.txt"):
        path = folder / name
        if not path.is_file():
            sys.exit(f"error: {path} not found (pass --shared pointing at the shared folder)")
        smiles.extend(record.smiles for record in read_chebi20(path))
    return smiles


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def bench_molecules(smiles: list[str], gin, batch_size: int, naive_count: int) -> dict:
    RDLogger.DisableLog("rdApp.*")
    parse_seconds, parsed = timed(lambda: [Chem.MolFromSmiles(s) for s in smiles])
    valid = [s for s, mol in zip(smiles, parsed) if mol is not None]

    def batched() -> int:
        atoms = 0
        for start in range(0, len(valid), batch_size):
            graph = featurize_smiles(valid[start: start + batch_size])
            atoms += gin.encode(graph).shape[0]
        return atoms

    def naive() -> int:
        atoms = 0
        for s in valid[:naive_count]:
            atoms += gin.encode(featurize_smiles(s)).shape[0]
        return atoms

    def featurize_only() -> None:
        for start in range(0, len(valid), batch_size):
            featurize_smiles(valid[start: start + batch_size])

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        featurize_seconds, _ = timed(featurize_only)
        batched_seconds, atoms = timed(batched)
        naive_seconds, _ = timed(naive)
    batched_rate = len(valid) / batched_seconds
    naive_rate = min(naive_count, len(valid)) / naive_seconds
    return {
        "molecules": len(smiles),
        "invalid_smiles": len(smiles) - len(valid),
        "atoms": atoms,
        "batch_size": batch_size,
        "batched_mol_per_s": round(batched_rate, 1),
        "naive_molecules": min(naive_count, len(valid)),
        "naive_mol_per_s": round(naive_rate, 1),
        "batched_over_naive": round(batched_rate / naive_rate, 2),
        "featurize_only_mol_per_s": round(len(valid) / featurize_seconds, 1),
        "rdkit_parse_mol_per_s": round(len(smiles) / parse_seconds, 1),
        "batched_over_rdkit_parse": round(batched_rate / (len(smiles) / parse_seconds), 3),
    }


def bench_generation(model, new_tokens: int, repeats: int) -> dict:
    aspirin = "CC(=O)Oc1ccccc1C(=O)O"
    mol_prompt = chat_prompt("What is this molecule?", molecules=1)
    positions = model.splice(mol_prompt, aspirin).inputs_embeds.shape[1]
    # A text-only prompt with exactly as many positions: the question padded with words, then trimmed.
    words, text_prompt = "What is this molecule? Please describe its structure and use in detail".split(), None
    question = ""
    for word in islice(cycle(words), 400):
        candidate = chat_prompt(f"{question} {word}".strip())
        if model.splice(candidate).inputs_embeds.shape[1] > positions:
            break
        question, text_prompt = f"{question} {word}".strip(), candidate
    text_positions = model.splice(text_prompt).inputs_embeds.shape[1]

    def once(prompt, molecules) -> float:
        seconds, ids = timed(model.generate_ids, prompt, molecules, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens)
        assert ids.shape[1] == new_tokens
        return seconds

    once(text_prompt, None)  # warm-up
    mol_best = text_best = float("inf")
    for _ in range(repeats):  # interleaved, best of N: a busy machine slows both alike
        mol_best = min(mol_best, once(mol_prompt, aspirin))
        text_best = min(text_best, once(text_prompt, None))
    mol_rate, text_rate = new_tokens / mol_best, new_tokens / text_best
    return {
        "prompt_positions_molecule": positions,
        "prompt_positions_text": text_positions,
        "new_tokens": new_tokens,
        "molecule_prompt_tok_per_s": round(mol_rate, 2),
        "text_prompt_tok_per_s": round(text_rate, 2),
        "molecule_over_text": round(mol_rate / text_rate, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (datasets/chebi20)")
    parser.add_argument("--quick", action="store_true", help="1,000 molecules, 16 new tokens, 1 repeat")
    parser.add_argument("--molecules", type=int, default=None, help="molecules to encode (default 10,000)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    total = args.molecules or (1000 if args.quick else 10_000)
    smiles = list(islice(cycle(read_chebi_smiles(args.shared)), total))
    load_seconds, model = timed(load_model, "mini")
    result = {
        "benchmark": "model_speed",
        "quick": args.quick,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "mini_load_s": round(load_seconds, 2),
        "featurize_gin": bench_molecules(smiles, model.mol_structure_encoder, batch_size=256,
                                         naive_count=200 if args.quick else 1000),
        "generation": bench_generation(model, new_tokens=16 if args.quick else 32, repeats=1 if args.quick else 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
