"""Featurization speed against the RDKit parse: ``python bench/featurize.py [--molecules 6000] [--quick]``
prints ONE JSON object.

What it measures, in one run, on ChEBI-20 SMILES (the shipped reference + any shared test-split row
it lacks, distinct, cycled to ``--molecules``), the rounds interleaved and the best of each kept (a busy machine
slows every contender alike):

Per-core figures are molecules per second of this process's CPU time (one thread: torch and RDKit
single-threaded), so other work on the machine does not change them; the pool's figure is wall time.

- ``parse``: the baseline, single-core RDKit ``MolFromSmiles`` (sanitized, logs blocked, each molecule
  dropped after parsing) in molecules/s: featurization parses too, so it cannot beat this;
- ``featurize``: ``featurize_smiles`` on batches of ``DEFAULT_BATCH_SIZE``, one core (torch 1 thread),
  parse included; ``ratio_to_parse`` is the per-core figure of issue 16 (goal >= 0.8);
- ``former``: the implementation before issue 16 (``tests/model/test_featurize._former_featurize``,
  whose output the new one must equal), the same way;
- ``featurize_batches``: the bulk path on every core (``--workers``, default all), pool start included:
  wall rate against the one-core wall parse rate, and its CPU (parent + workers) against one core's;
- ``encode``: GIN (mini preset: 5 layers, 300 wide, fresh weights: the time is the same) molecules/s
  per batch size on one thread, featurized beforehand, the sizes interleaved in each round; the best
  batch size is reported next to ``DEFAULT_BATCH_SIZE``.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.model.test_featurize holds the former implementation

import torch  # noqa: E402
from rdkit import Chem  # noqa: E402
from rdkit.rdBase import BlockLogs  # noqa: E402

from biomedgpt.core.chem import try_parse_smiles  # noqa: E402
from biomedgpt.core.datasets import read_chebi20  # noqa: E402
from biomedgpt.model.featurize import default_workers  # noqa: E402
from biomedgpt.model.molecule import DEFAULT_BATCH_SIZE, GINEncoder, featurize_batches, featurize_smiles  # noqa: E402
from biomedgpt.model.retrieval import reference_molecules  # noqa: E402


def chebi_smiles(shared: Path) -> list[str]:
    """The shipped ChEBI-20 reference, plus the shared test split's rows it lacks, once each."""
    smiles = [r.smiles for r in reference_molecules()]
    test = shared / "datasets" / "chebi20" / "test.txt"
    if test.is_file():
        smiles += [r.smiles for r in read_chebi20(test)]
    return [s for s in dict.fromkeys(smiles) if try_parse_smiles(s) is not None]


def best_rates(contenders: dict, count: int, rounds: int, clock=time.process_time) -> dict[str, float]:
    """Molecules/s of each contender, best of ``rounds`` interleaved, by ``clock``: this process's CPU
    time for one-thread work (what one core does, whatever else the machine runs), wall time for the
    pool."""
    best = {name: float("inf") for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = clock()
            fn()
            best[name] = min(best[name], clock() - start)
    return {name: count / seconds for name, seconds in best.items()}


def bulk_run(smiles: list[str], size: int, workers: int) -> dict:
    """One pass of ``featurize_batches``: wall time, and CPU time of this process and of its workers."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in featurize_batches(smiles, size, workers=workers):
        pass
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return {"wall_s": wall, "parent_cpu_s": cpu, "workers_cpu_s": worker_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared folder")
    parser.add_argument("--molecules", type=int, default=6_000, help="SMILES (ChEBI-20 has ~6,100 distinct)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="processes for featurize_batches (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="2,000 molecules, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.molecules, args.rounds = 2000, 2
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # a few ChEBI molecules hold features the tables map (warned once each)
    from tests.model.test_featurize import _former_featurize

    smiles = list(islice(cycle(chebi_smiles(args.shared)), args.molecules))
    size = DEFAULT_BATCH_SIZE
    workers = args.workers or default_workers()

    def parse() -> None:
        with BlockLogs():
            for s in smiles:
                Chem.MolFromSmiles(s)

    def new() -> None:
        for i in range(0, len(smiles), size):
            featurize_smiles(smiles[i:i + size])

    def former() -> None:
        for i in range(0, len(smiles), size):
            _former_featurize(smiles[i:i + size])

    featurize_smiles(smiles[:size])  # warm-up: RDKit tables, torch_geometric
    rates = best_rates({"parse": parse, "featurize": new, "former": former}, len(smiles), args.rounds)
    wall_rates = best_rates({"parse": parse, "featurize": new}, len(smiles), 1, clock=time.perf_counter)
    bulk = min((bulk_run(smiles, size, workers) for _ in range(max(1, args.rounds - 1))), key=lambda r: r["wall_s"])
    bulk_rate = len(smiles) / bulk["wall_s"]

    gin = GINEncoder().eval()
    sample = smiles[:1024 if not args.quick else 512]
    runs = {}
    for batch_size in (16, 32, 64, 128, 256, 600):
        graphs = [featurize_smiles(sample[i:i + batch_size]) for i in range(0, len(sample), batch_size)]

        def run(graphs=graphs) -> None:
            with torch.no_grad():
                for graph in graphs:
                    gin.encode(graph)

        run()  # warm-up
        runs[str(batch_size)] = run
    # Interleaved rounds: the sizes within a few % of each other are told apart by the same moments of load.
    encode = {k: round(v, 1) for k, v in best_rates(runs, len(sample), args.rounds).items()}
    best_batch = max(encode, key=encode.get)
    parse_rate = rates["parse"]
    print(json.dumps({
        "benchmark": "featurize",
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "molecules": len(smiles),
        "batch_size": size,
        "parse": {"mol_per_s": round(parse_rate, 1), "what": "RDKit MolFromSmiles, one core (the baseline)"},
        "featurize": {"mol_per_s": round(rates["featurize"], 1), "ratio_to_parse": round(rates["featurize"] / parse_rate, 3),
                      "what": "featurize_smiles, one core, parse included"},
        "former": {"mol_per_s": round(rates["former"], 1), "ratio_to_parse": round(rates["former"] / parse_rate, 3),
                   "what": "the featurizer before issue 16, one core"},
        "featurize_over_former": round(rates["featurize"] / rates["former"], 2),
        "featurize_batches": {
            "workers": workers, "wall_mol_per_s": round(bulk_rate, 1),
            "ratio_to_one_core_parse_wall": round(bulk_rate / wall_rates["parse"], 3),
            "one_core_wall_mol_per_s": {k: round(v, 1) for k, v in wall_rates.items()},
            "parent_cpu_s": round(bulk["parent_cpu_s"], 2), "workers_cpu_s": round(bulk["workers_cpu_s"], 2),
            "cpu_overhead_vs_one_core": round((bulk["parent_cpu_s"] + bulk["workers_cpu_s"])
                                              / (len(smiles) / rates["featurize"]), 3),
            "what": "bulk path on every core, pool start included; wall rates compare with the one-core wall rates "
                    "measured just before (a machine shared with other work gives the pool fewer free cores)"},
        "encode_mol_per_s_by_batch": encode,
        "encode_best_batch": int(best_batch),
        "encode_default_batch": size,
    }, indent=2))


if __name__ == "__main__":
    main()
