"""SMILES → GraphMVP graph arrays with RDKit and numpy only: ``graph_arrays(["CCO", "c1ccccc1"])``.

Use ``model/molecule.featurize_smiles`` (a PyG ``Data``/``Batch``) or ``featurize_batches`` (bulk, on
every core); this module is their torch-free core, so a worker process that featurizes imports RDKit
and numpy (~0.1 s), not torch and torch_geometric (~2 s).

Why it is built this way (issue 16: featurization was 0.29x the RDKit parse rate): after the parse,
every call into RDKit per atom or per bond is the whole cost, and a call that returns an enum object
(chiral tag, bond type, bond direction) costs ~4x one that returns an int or a float. So each
molecule is one pass that reads only what can differ:

- atomic numbers, bond begin/end atoms and bond orders as floats, always;
- chiral tags only when the SMILES has an ``@`` (the parse never invents a tag), bond directions only
  when it has ``/`` or ``\\`` (likewise), else those columns are 0;
- bond types as enums only when a float could be ambiguous: a written dative bond (``->``/``<-``),
  any element outside the organic set (sanitization turns some metal bonds DATIVE, which reads 1.0
  like SINGLE), or an order other than 1, 2, 3, 1.5.

The per-molecule lists then fill preallocated int64 arrays for a whole batch in one go. The output
is identical to the former per-property implementation (``tests/model/test_featurize.py`` compares
them on the 3,296 ChEBI-20 reference molecules and the edge cases), so trained encoders stay valid.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from biomedgpt.core.chem import parse_smiles

if TYPE_CHECKING:
    from rdkit import Chem

#: Atom-type index for anything that is not element 1..118 (the dummy atom ``*`` has atomic number 0).
MISC_ATOM_INDEX = 118
#: Bond-type index of the GIN's self-loops, shared by bond types outside SINGLE/DOUBLE/TRIPLE/AROMATIC.
SELF_LOOP_BOND_TYPE = 4
#: Elements whose bonds RDKit's parse leaves as written; with any other element present the bond types
#: are read as enums (the exact, slower way).
ORGANIC_ELEMENTS = frozenset((1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 33, 34, 35, 52, 53))


class FeaturizationWarning(UserWarning):
    """A molecule holds a feature the GraphMVP tables cannot represent; it was mapped to a fallback."""


class GraphArrays(NamedTuple):
    """Features of one or more molecules, concatenated (atom indices in ``edge_index`` are global)."""

    x: np.ndarray  # [atoms, 2] int64: atomic number - 1 (118 misc), chirality index
    edge_index: np.ndarray  # [2, 2 * bonds] int64: each bond i→j then j→i
    edge_attr: np.ndarray  # [2 * bonds, 2] int64: bond-type index, bond-direction index
    atom_counts: np.ndarray  # [molecules] int64
    bond_counts: np.ndarray  # [molecules] int64
    notes: list[str]  # FeaturizationWarning messages, in order, for the caller to emit


class _Tables:
    """RDKit enum → index tables and unbound accessors, built once on first use (importing stays cheap)."""

    _built: _Tables | None = None

    def __init__(self) -> None:
        from rdkit import Chem  # deferred: RDKit, until the first structure is featurized

        ct, bt, bd = Chem.rdchem.ChiralType, Chem.rdchem.BondType, Chem.rdchem.BondDir
        self.chirality = {ct.CHI_UNSPECIFIED: 0, ct.CHI_TETRAHEDRAL_CW: 1, ct.CHI_TETRAHEDRAL_CCW: 2}
        self.bond_type = {bt.SINGLE: 0, bt.DOUBLE: 1, bt.TRIPLE: 2, bt.AROMATIC: 3}
        # Other directions (BEGINWEDGE, BEGINDASH, EITHERDOUBLE, UNKNOWN) are 2-D drawing hints that
        # SMILES parsing does not produce; the stereo they imply is already in the chirality tag.
        self.bond_dir = {bd.NONE: 0, bd.ENDUPRIGHT: 1, bd.ENDDOWNRIGHT: 2}
        # SINGLE 1.0, DOUBLE 2.0, TRIPLE 3.0, AROMATIC 1.5 (DATIVE is 1.0 too: see ``molecule_lists``).
        self.bond_type_by_order = {1.0: 0, 2.0: 1, 3.0: 2, 1.5: 3}
        self.parse = Chem.MolFromSmiles
        self.atomic_num = Chem.rdchem.Atom.GetAtomicNum
        self.chiral_tag = Chem.rdchem.Atom.GetChiralTag
        self.begin = Chem.rdchem.Bond.GetBeginAtomIdx
        self.end = Chem.rdchem.Bond.GetEndAtomIdx
        self.order = Chem.rdchem.Bond.GetBondTypeAsDouble
        self.bond_type_of = Chem.rdchem.Bond.GetBondType
        self.bond_dir_of = Chem.rdchem.Bond.GetBondDir

    @classmethod
    def get(cls) -> _Tables:
        if cls._built is None:
            cls._built = cls()
        return cls._built


def where_text(index: int, total: int) -> str:
    """How an error or warning names a list item: `` (item 3 of 10)``; nothing for a single SMILES."""
    return f" (item {index + 1} of {total})" if total > 1 else ""


def _fast_parse(item: object, tables: _Tables) -> Chem.Mol | None:
    """The sanitized parse of the stripped string, or ``None`` (the caller asks ``parse_smiles`` why)."""
    if type(item) is not str:
        return None
    try:
        mol = tables.parse(item.strip())
    except Exception:  # noqa: BLE001 - RDKit raises on some pathological input
        return None
    return mol if mol is not None and mol.GetNumAtoms() > 0 else None


def parse(item: object, where: str = "") -> Chem.Mol:
    """``core.chem.parse_smiles`` without its per-call overhead on the common path (the same sanitized
    parse; a failure is parsed again by ``parse_smiles`` for its message)."""
    mol = _fast_parse(item, _Tables.get())
    return mol if mol is not None else parse_smiles(item, where)


def molecule_lists(mol: Chem.Mol, smiles: str, notes: list[str], index: int = 0, total: int = 1) -> tuple:
    """One pass over a parsed molecule: (atomic numbers, chirality indices or None, bond begins, bond
    ends, bond-type indices, bond-direction indices or None); ``None`` means all 0. A feature the
    tables cannot hold is mapped (chirality → 0, bond type → ``SELF_LOOP_BOND_TYPE``) and a message
    appended to ``notes``."""
    tables = _Tables._built or _Tables.get()
    atoms = list(map(mol.GetAtomWithIdx, range(mol.GetNumAtoms())))
    bonds = list(map(mol.GetBondWithIdx, range(mol.GetNumBonds())))
    z = list(map(tables.atomic_num, atoms))
    begin = list(map(tables.begin, bonds))
    end = list(map(tables.end, bonds))
    chirality = bond_dir = None
    mapped: list[str] = []
    if "@" in smiles:
        get = tables.chirality.get
        chirality = [get(tag, -1) for tag in map(tables.chiral_tag, atoms)]
        if -1 in chirality:
            for i, value in enumerate(chirality):
                if value < 0:
                    mapped.append(f"atom {i} ({atoms[i].GetSymbol()}) chirality {atoms[i].GetChiralTag().name} → 0")
                    chirality[i] = 0
    if "/" in smiles or "\\" in smiles:
        get = tables.bond_dir.get
        bond_dir = [get(d, 0) for d in map(tables.bond_dir_of, bonds)]
    get = tables.bond_type_by_order.get
    bond_type = [get(order, -1) for order in map(tables.order, bonds)]
    if "<" in smiles or ">" in smiles or -1 in bond_type or not ORGANIC_ELEMENTS.issuperset(z):
        get = tables.bond_type.get
        bond_type = [get(t, -1) for t in map(tables.bond_type_of, bonds)]
        for k, value in enumerate(bond_type):
            if value < 0:
                mapped.append(f"bond {begin[k]}-{end[k]} type {bonds[k].GetBondType().name} → "
                              f"{SELF_LOOP_BOND_TYPE} (other)")
                bond_type[k] = SELF_LOOP_BOND_TYPE
    if mapped:
        notes.append(f"SMILES {smiles!r}{where_text(index, total)}: mapped what the GraphMVP tables cannot represent: "
                     + "; ".join(mapped))
    return z, chirality, begin, end, bond_type, bond_dir


def graph_arrays(smiles: Sequence[str], first: int = 0, total: int | None = None) -> GraphArrays:
    """Features of ``smiles`` (a list; item ``i`` is named as item ``first + i`` of ``total`` in errors).

    RDKit's own log lines are blocked (our error names the SMILES); an invalid SMILES raises
    ``InvalidSmilesError``.
    """
    from rdkit.rdBase import BlockLogs  # deferred: RDKit

    total = len(smiles) if total is None else total
    notes: list[str] = []
    parts = []
    with BlockLogs():
        tables = _Tables.get()
        for index, item in enumerate(smiles, first):
            mol = _fast_parse(item, tables)
            if mol is None:
                mol = parse_smiles(item, where_text(index, total))  # raises, naming the item and why
            parts.append(molecule_lists(mol, item, notes, index, total))
    return _fill(parts, notes)


def _fill(parts: list[tuple], notes: list[str]) -> GraphArrays:
    """Preallocate the batch's arrays once and fill them from the per-molecule lists."""
    atom_counts = np.fromiter((len(p[0]) for p in parts), dtype=np.int64, count=len(parts))
    bond_counts = np.fromiter((len(p[2]) for p in parts), dtype=np.int64, count=len(parts))
    atoms, bonds = int(atom_counts.sum()), int(bond_counts.sum())
    z = np.fromiter((v for p in parts for v in p[0]), dtype=np.int64, count=atoms)
    x = np.zeros((atoms, 2), dtype=np.int64)
    x[:, 0] = np.where((z >= 1) & (z <= 118), z - 1, MISC_ATOM_INDEX)
    begin = np.fromiter((v for p in parts for v in p[2]), dtype=np.int64, count=bonds)
    end = np.fromiter((v for p in parts for v in p[3]), dtype=np.int64, count=bonds)
    bond_type = np.fromiter((v for p in parts for v in p[4]), dtype=np.int64, count=bonds)
    if len(parts) > 1:  # each molecule's atom indices shifted by the atoms before it
        starts = np.zeros(len(parts), dtype=np.int64)
        np.cumsum(atom_counts[:-1], out=starts[1:])
        shift = np.repeat(starts, bond_counts)
        begin += shift
        end += shift
    # Each bond twice, i→j then j→i; with no bonds the shapes stay [2, 0] and [0, 2].
    edge_index = np.empty((2, 2 * bonds), dtype=np.int64)
    edge_index[0, 0::2] = edge_index[1, 1::2] = begin
    edge_index[1, 0::2] = edge_index[0, 1::2] = end
    edge_attr = np.zeros((2 * bonds, 2), dtype=np.int64)
    edge_attr[0::2, 0] = edge_attr[1::2, 0] = bond_type
    atom_at = bond_at = 0
    for part, n_atoms, n_bonds in zip(parts, atom_counts.tolist(), bond_counts.tolist()):
        if part[1] is not None:
            x[atom_at:atom_at + n_atoms, 1] = part[1]
        if part[5] is not None:
            edge_attr[2 * bond_at:2 * (bond_at + n_bonds):2, 1] = part[5]
            edge_attr[2 * bond_at + 1:2 * (bond_at + n_bonds):2, 1] = part[5]
        atom_at += n_atoms
        bond_at += n_bonds
    return GraphArrays(x, edge_index, edge_attr, atom_counts, bond_counts, notes)


# ------------------------------------------------------------------------------------- many cores


def default_workers() -> int:
    """Processes for bulk featurization: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _chunk_task(task: tuple[list[str], int, int]) -> GraphArrays:
    smiles, first, total = task
    return graph_arrays(smiles, first, total)


def pool_context():
    """How worker processes start: ``fork`` on Linux, ``spawn`` elsewhere.

    Why fork: a spawned or forkserver worker re-imports the caller's ``__main__`` (a training script
    importing torch: seconds per worker), which cost more than the featurizing it was to share. A fork
    starts in milliseconds, and is safe here because the workers only run RDKit and numpy, never torch
    or OpenMP (the same choice as torch's own DataLoader workers on Linux). macOS cannot fork safely.
    """
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def map_chunks(smiles: Sequence[str], chunk: int, workers: int) -> Iterator[GraphArrays]:
    """``graph_arrays`` of consecutive chunks of ``smiles``, in order, in ``workers`` processes
    (``pool_context``); a failure (an invalid SMILES) is raised here as the worker raised it.
    """
    tasks = ((list(smiles[i:i + chunk]), i, len(smiles)) for i in range(0, len(smiles), chunk))
    if workers <= 1:
        yield from map(_chunk_task, tasks)
        return
    with ProcessPoolExecutor(workers, mp_context=pool_context()) as pool:
        yield from pool.map(_chunk_task, tasks)
