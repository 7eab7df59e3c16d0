"""Speed of the BioMedGPT model on CPU: ``python bench/model_speed.py --shared ../shared [--quick]`` prints one JSON object.

What it measures, all in one run so the ratios compare like with like, on one thread (``--threads``) so every
figure is per core:

- molecules featurized (RDKit → PyG graph) and GIN-encoded (mini preset: 300 wide, 5 layers) per second, on
  the 6,101 ChEBI-20 validation + test SMILES cycled to 10,000, batched, against a naive loop that does one
  molecule at a time (on a prefix, for time); featurization alone; the single-core RDKit parse rate
  (``MolFromSmiles`` alone), which featurization cannot beat (``bench/featurize.py`` measures it in detail);
- mini-model (SmolLM2-135M) greedy decoding tokens/s after the prefill of the prompt the shipped model really
  gets (ChatML, the molecule's soft tokens, its nearest reference described in full; about 300 positions), 64
  tokens forced, for transformers' ``generate`` (the former path) and the project's loop
  (``model/generation.py``) with fp32 and int8 weights, each against the fp32 memory-bandwidth bound of the same
  run: the copy bandwidth of a 512 MB tensor (bytes read + written per second, best of 5) ÷ (the LM's
  parameters × 4 bytes). Issue 16's goal is a ratio of at least 1.0: faster than any decoder reading fp32 weights.

ChEBI-20 rows are read by ``core/datasets.read_chebi20`` (which un-escapes the ``\\\\`` of cis/trans bonds).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable
from itertools import cycle, islice
from pathlib import Path

import torch
from rdkit import Chem, RDLogger

from biomedgpt.core.datasets import read_chebi20
from biomedgpt.core.errors import InputError
from biomedgpt.model import load_model
from biomedgpt.model.conversation import CAPTION_QUESTION
from biomedgpt.model.generation import Decoding, LeanLlama, greedy
from biomedgpt.model.molecule import DEFAULT_BATCH_SIZE, featurize_smiles
from biomedgpt.model.prompts import model_structure_prompt
from biomedgpt.model.quantize import fast_bf16, resolve_weight_format


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


def copy_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes read + written per second copying a ``megabytes`` fp32 tensor, best of ``repeats`` (torch's threads)."""
    source = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    target.copy_(source)  # touch every page once
    best = min(timed(target.copy_, source)[0] for _ in range(repeats))
    return 2 * source.numel() * 4 / best


def shipped_prompt(model, shared: Path, target: int = 300) -> tuple[str, str, int]:
    """The prompt the shipped model really gets (``model/prompts.model_structure_prompt``: ChatML, the molecule's
    soft tokens, the nearest reference described in full) for the ChEBI-20 test molecule among the first 200 whose
    spliced prompt is closest to ``target`` positions: ``(text, smiles, positions)``."""
    best = None
    for record in islice(read_chebi20(shared / "datasets" / "chebi20" / "test.txt"), 200):
        try:
            built = model_structure_prompt(model, "molecule", CAPTION_QUESTION, structure=record.smiles,
                                           query_id=record.cid, chat=True)
        except InputError:
            continue
        positions = model.splice(built.text, record.smiles).inputs_embeds.shape[1]
        if best is None or abs(positions - target) < abs(best[2] - target):
            best = (built.text, record.smiles, positions)
    return best


def bench_generation(model, shared: Path, new_tokens: int, repeats: int) -> dict:
    """Decoding tokens/s after the prefill (greedy, ``new_tokens`` forced, this process's torch threads) of the
    shipped prompt, against the fp32 memory-bandwidth bound measured in the same run: copy bandwidth ÷ (the LM's
    parameters × 4 bytes), the speed no decoder that reads fp32 weights can pass."""
    text, smiles, positions = shipped_prompt(model, shared)
    batch = model.splice(text, smiles, padding_side="left")
    rules = Decoding(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    eos = (model.tokenizer.eos_token_id,)
    parameters = sum(p.numel() for p in model.llm.parameters())

    def lean(fmt: str) -> Callable[[], float]:
        decoder = LeanLlama(model.llm, fmt)

        def once() -> float:
            timings: dict = {}
            greedy(decoder, batch.inputs_embeds, batch.attention_mask, rules, eos_ids=eos, timings=timings)
            return timings["decode_steps"] / timings["decode_s"]
        return once

    def transformers_generate() -> float:
        """The former path: ``generate`` on the same embeddings; timed from its first token to its last."""
        from transformers import StoppingCriteria, StoppingCriteriaList

        stamps: list[float] = []

        class Clock(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                stamps.append(time.perf_counter())
                return torch.zeros(input_ids.shape[0], dtype=torch.bool)

        with torch.no_grad():
            model.llm.generate(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                               max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                               pad_token_id=model.tokenizer.pad_token_id, stopping_criteria=StoppingCriteriaList([Clock()]))
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    contenders = {"transformers_generate_fp32": transformers_generate, "lean_fp32": lean("fp32")}
    if resolve_weight_format("auto") == "int8":
        contenders["lean_int8"] = lean("int8")
    for run in contenders.values():  # warm-up
        run()
    rates = {name: 0.0 for name in contenders}
    bandwidth = 0.0
    for _ in range(repeats):  # interleaved, best of N: a busy machine slows every contender alike
        bandwidth = max(bandwidth, copy_bandwidth())
        for name, run in contenders.items():
            rates[name] = max(rates[name], run())
    bound = bandwidth / (parameters * 4)
    return {
        "prompt": "shipped (ChatML, soft tokens, nearest reference in full)",
        "prompt_positions": positions,
        "new_tokens": new_tokens,
        "lm_parameters": parameters,
        "copy_bandwidth_gb_per_s": round(bandwidth / 1e9, 2),
        "fp32_bound_tok_per_s": round(bound, 2),
        "fast_bf16_cpu": fast_bf16(),
        "default_weights": resolve_weight_format("auto"),
        "tok_per_s": {name: round(rate, 2) for name, rate in rates.items()},
        "ratio_to_fp32_bound": {name: round(rate / bound, 3) for name, rate in rates.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (datasets/chebi20)")
    parser.add_argument("--quick", action="store_true", help="1,000 molecules, 16 new tokens, 1 repeat")
    parser.add_argument("--molecules", type=int, default=None, help="molecules to encode (default 10,000)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: every figure is per core, like the single-core parse)")
    args = parser.parse_args()
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
        "featurize_gin": bench_molecules(smiles, model.mol_structure_encoder, batch_size=DEFAULT_BATCH_SIZE,
                                         naive_count=200 if args.quick else 1000),
        "generation": bench_generation(model, args.shared, new_tokens=16 if args.quick else 64,
                                       repeats=1 if args.quick else 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
