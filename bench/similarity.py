"""Similarity search at scale: ``python bench/similarity.py [--sizes 100000,1000000] [--no-baseline-above N]``
prints ONE JSON object.

What it measures, in one run, on one core (numpy and RDKit are single-threaded here; BLAS/OpenMP
pinned to 1 thread before numpy loads). Latencies are this process's CPU time per query (what one
core spends, unchanged by other work on a shared machine), with the wall-clock median beside them:

- ``packed``: query latency (median and p95 over real ChEBI-20 test-set query molecules) of the
  packed index that ``similar_known`` uses (``model/fpindex``: Tanimoto of every reference + top 10),
  and its bytes per entry, at each size;
- ``baseline``: the former path on the same references and queries: RDKit ``BulkTanimotoSimilarity``
  over a list of ``ExplicitBitVect`` plus the full ``lexsort`` of every score, and its bytes per
  entry (resident-memory growth while the list is built); ``ratio`` = baseline time / packed time;
- ``parity``: the packed scores equal RDKit's, bit for bit, for every query (checked, not assumed);
- ``molecule_db``: ``BIOMEDGPT_MOLECULE_DB`` end to end on a ``.smi`` of ChEBI-20 SMILES cycled to
  ``--db-size`` lines: fingerprinting rate on all cores (vs one core's RDKit parse+fingerprint rate), and a
  whole ``search`` (k=5, leave-self-out: the lazy InChIKey checks and line reads included).

References are SYNTHETIC beyond the 6,101 real ChEBI-20 fingerprints: each is a real fingerprint with
3 random extra bits, so bit densities are those of real molecules (a query touches as many words).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K = 10


def rss_bytes() -> int:
    """Resident memory, after handing freed heap back to the OS (so a delta counts new allocations only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def chebi_smiles(shared: Path) -> tuple[list[str], list[str]]:
    """(reference SMILES: the shipped ChEBI-20 validation reference, query SMILES: ChEBI-20 test)."""
    from biomedgpt.core.chem import try_parse_smiles
    from biomedgpt.core.datasets import read_chebi20
    from biomedgpt.model.retrieval import reference_molecules

    reference = [r.smiles for r in reference_molecules()]
    test_file = shared / "datasets" / "chebi20" / "test.txt"
    if test_file.is_file():
        queries = [r.smiles for r in read_chebi20(test_file)]
    else:  # the reference itself, held out by position
        queries = reference[-500:]
    return [s for s in reference if try_parse_smiles(s)], [s for s in queries if try_parse_smiles(s)]


def synthetic_rows(real_rows: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` fingerprints (row-major uint64 words): a real one each, plus 3 random bits."""
    rng = np.random.default_rng(seed)
    rows = real_rows[rng.integers(0, len(real_rows), n)].copy()
    for _ in range(3):
        bit = rng.integers(0, 2048, n)
        rows[np.arange(n), bit >> 6] |= np.left_shift(np.uint64(1), (bit & 63).astype(np.uint64))
    rows[: len(real_rows)] = real_rows[: min(n, len(real_rows))]
    return rows


def timings(fn, queries) -> tuple[list[float], list[float]]:
    """(CPU seconds, wall seconds) per query: CPU time is what one core spends, whatever else runs."""
    cpu, wall = [], []
    for q in queries:
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        fn(q)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return cpu, wall


def summary(seconds: tuple[list[float], list[float]]) -> dict:
    cpu, wall = (np.asarray(s) * 1e3 for s in seconds)
    return {"median_ms": round(float(np.median(cpu)), 2), "p95_ms": round(float(np.percentile(cpu, 95)), 2),
            "wall_median_ms": round(float(np.median(wall)), 2)}


def bench_size(n: int, real_rows: np.ndarray, query_mols: list, baseline: bool) -> dict:
    from rdkit import DataStructs

    from biomedgpt.core.chem import morgan_generator
    from biomedgpt.model.fpindex import PackedFingerprints, top_k

    index = PackedFingerprints.from_rows(synthetic_rows(real_rows, n), 2048)
    generator = morgan_generator()
    queries = [PackedFingerprints.pack_one(generator.GetFingerprint(m)) for m in query_mols]

    def packed(q):
        return top_k(index.tanimoto(q), K)

    packed(queries[0])  # warm-up
    result: dict = {"references": n, "queries": len(queries), "k": K,
                    "packed": {**summary(timings(packed, queries)),
                               "bytes_per_entry": round(index.nbytes / n, 1),
                               "what": "packed uint64 words + popcount, Tanimoto + argpartition top k (model/fpindex)"}}
    if not baseline:
        return result
    offsets, onbits = index.to_onbits()
    before = rss_bytes()
    fps = []
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        fp = DataStructs.ExplicitBitVect(2048)
        fp.SetBitsFromList(onbits[start:end].tolist())
        fps.append(fp)
    list_rss = rss_bytes() - before
    rdkit_queries = [generator.GetFingerprint(m) for m in query_mols]

    def former(q):  # model/retrieval.py before issue 16
        sims = np.asarray(DataStructs.BulkTanimotoSimilarity(q, fps), dtype=np.float64)
        valid = np.flatnonzero(sims >= 0)
        return valid[np.lexsort((valid, -sims[valid]))][:K].tolist()

    former(rdkit_queries[0])
    base = summary(timings(former, rdkit_queries))
    mismatches = 0
    for q_packed, q_rdkit in zip(queries, rdkit_queries):
        expected = np.asarray(DataStructs.BulkTanimotoSimilarity(q_rdkit, fps))
        got = index.tanimoto(q_packed)
        mismatches += int(not np.array_equal(got, expected) or top_k(got, K) != former(q_rdkit))
    result["baseline"] = {**base, "rss_bytes_per_entry": round(list_rss / n, 1),
                          "what": "RDKit BulkTanimotoSimilarity over a list + full lexsort (the former index)"}
    result["ratio_median"] = round(base["median_ms"] / result["packed"]["median_ms"], 2)
    result["memory_ratio"] = round(list_rss / index.nbytes, 2)
    result["parity"] = {"queries_checked": len(queries), "mismatches": mismatches}
    del fps
    return result


def bench_molecule_db(reference: list[str], queries: list[str], size: int) -> dict:
    from rdkit import Chem, rdBase

    from biomedgpt.core.chem import morgan_generator
    from biomedgpt.core.settings import Settings, use_settings
    from biomedgpt.model.molecule_db import MoleculeDB, default_workers, open_molecule_db

    lines = [reference[i % len(reference)] for i in range(size)]
    generator = morgan_generator()
    with rdBase.BlockLogs():
        start = time.perf_counter()
        for s in lines[:5000]:
            generator.GetFingerprint(Chem.MolFromSmiles(s))
        one_core = 5000 / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "refs.smi"
        path.write_text("".join(f"{s} M{i}\n" for i, s in enumerate(lines)))
        with use_settings(Settings(home=Path(folder) / "home")):
            start = time.perf_counter()
            db = open_molecule_db(path)  # fingerprint + cache
            build = time.perf_counter() - start
            start = time.perf_counter()
            cached = MoleculeDB.load_cache(next((Path(folder) / "home" / "molecule_db").glob("*.npz")), db.path, db.stamp)
            load = time.perf_counter() - start
            assert cached is not None and len(cached) == len(db)
            db.search(queries[0], 5)
            search = summary(timings(lambda q: db.search(q, 5), queries[:100]))
    return {"lines": size, "workers": default_workers(), "build_s": round(build, 2),
            "build_mol_per_s": round(size / build, 1), "one_core_parse_fingerprint_mol_per_s": round(one_core, 1),
            "build_over_one_core": round(size / build / one_core, 2), "cache_load_s": round(load, 3),
            "bytes_per_entry": round(db.nbytes / len(db), 1), "search_k5_leave_self_out": search}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared folder")
    parser.add_argument("--sizes", default="100000", help="comma-separated reference counts")
    parser.add_argument("--queries", type=int, default=50, help="query molecules (real, ChEBI-20 test)")
    parser.add_argument("--no-baseline-above", type=int, default=200_000,
                        help="skip the RDKit baseline above this size (it holds ~1.6 KB per entry)")
    parser.add_argument("--db-size", type=int, default=20_000, help="lines of the BIOMEDGPT_MOLECULE_DB file (0: skip)")
    args = parser.parse_args()

    from biomedgpt.core.chem import morgan_generator, parse_smiles
    from biomedgpt.model.fpindex import PackedFingerprints

    reference, queries = chebi_smiles(args.shared)
    generator = morgan_generator()
    real_rows = PackedFingerprints.pack_rows(
        np.stack([generator.GetFingerprintAsNumPy(parse_smiles(s)) for s in reference + queries[args.queries:]]))
    query_mols = [parse_smiles(s) for s in queries[: args.queries]]
    result = {
        "benchmark": "similarity",
        "cpu": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "threads": 1,
        "fingerprint": "Morgan r=2, 2048 bits (core/chem.py)",
        "real_fingerprints": len(real_rows),
        "sizes": [bench_size(int(n), real_rows, query_mols, int(n) <= args.no_baseline_above)
                  for n in args.sizes.split(",")],
    }
    if args.db_size:
        result["molecule_db"] = bench_molecule_db(reference, queries, args.db_size)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
