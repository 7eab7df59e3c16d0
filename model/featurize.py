"""SMILES → GraphMVP graph arrays with RDKit and numpy only: ``graph_arrays(["CCO", "c1ccccc1"])``.

Use ``model/molecule.featurize_smiles`` (a PyG ``Data``/``Batch``) or ``featurize_batches`` (bulk, on
every core); this module is their torch-free core, so a worker process that featurizes imports RDKit
and numpy (~0.1 s), not torch and torch_geometric (~2 s).

Why it is built this way (issue 16: featurization was 0.29x the RDKit parse rate): after the parse,
every call into RDKit per atom or per bond is the whole cost. A call costs ~0.16 µs when it returns an
int or a float, ~0.65 µs when it returns an atom or bond object and ~0.9 µs when it returns an enum
(chiral tag, bond type, bond direction). So each molecule is one pass that asks RDKit only what the
SMILES text cannot say:

- atomic numbers come from the text, not from RDKit: the parser creates the atoms in the order of
  their tokens, so when the molecule has as many atoms as the SMILES has atom tokens (no hydrogen was
  removed), atom ``i`` is token ``i``, and each distinct token is resolved once by RDKit itself
  (``_TokenCodes``). A token outside the organic elements, the dummy ``*``, or anything unexpected (a
  dative arrow, ``~``, CXSMILES after a space) sends the molecule down the exact path below;
- chiral tags only of atoms whose token has an ``@`` (the parse never invents a tag), bond
  directions only when the SMILES has ``/`` or ``\\`` (likewise), else those columns are 0;
- bond begin/end atoms and bond orders as floats, per bond: RDKit has no cheaper reading (its
  adjacency matrix and pickle cost more than these calls and lose the bond order);
- the exact path (``molecule_lists``, every property as RDKit's enums) for a bond type a float could
  mistake: a written dative bond, an element outside the organic set (sanitization turns some metal
  bonds DATIVE, which reads 1.0 like SINGLE), an order other than 1, 2, 3, 1.5; and for a feature the
  tables cannot hold (mapped, with a ``FeaturizationWarning``).

The flat lists of a whole batch then fill preallocated int64 arrays in whole-array steps. The output
is identical to the former per-property implementation (``tests/model/test_featurize.py`` compares
them on the ChEBI-20 reference molecules, on random, Kekulé and all-H spellings of them, and on the
edge cases), so trained encoders stay valid.

Where the time goes (``bench/featurize.py``; ChEBI-20 molecules average 32 atoms and 33 bonds): the
parse ~75 µs; then, per molecule, the bond reads ~22-27 µs (33 bond objects and 3 numbers of each),
the chiral tags ~5-6 µs (4.3 ``@`` atoms), bond directions ~6 µs on average (22 % of molecules have
``/``), the atom tokens ~5 µs, the rest (lists, arrays, the exact path for 2.4 % of molecules) ~7 µs:
about 0.6x the parse rate. 0.8x would leave ~19 µs for all of it, less than the bond reads alone;
the bulk readers RDKit offers do not help (``GetAdjacencyMatrix(useBO=True)`` ~7 µs and loses bond
order and direction, ``ToBinary`` ~20 µs, ``MolToJSON`` ~55 µs, before any decoding).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from itertools import compress
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
        self.orders = frozenset(self.bond_type_by_order)
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


#: Atom tokens of a SMILES in the order RDKit's parser creates the atoms: bracket atoms, the two-letter
#: organic symbols, and every other character that is not ring-bond, branch, bond or dot syntax (so
#: anything unexpected, e.g. ``<`` of a dative arrow, ``~`` or a space before CXSMILES, is a token
#: that resolves to ``_SLOW`` and sends the molecule down the exact per-property path).
_ATOM_TOKEN = re.compile(r"[^\[\d%()=#$:/\\.\-BC]|[BC][lr]?|\[[^\]]*\]")
#: Token codes: ``x[:, 0]`` (atomic number − 1), plus ``_CHIRAL`` for a token with ``@``; ``_SLOW``
#: for a token the fast path does not take (unknown, outside ``ORGANIC_ELEMENTS``, the dummy ``*``).
_CHIRAL = 200
_SLOW = 1000
_ORGANIC_SUBSET = frozenset(("B", "C", "N", "O", "P", "S", "F", "Cl", "Br", "I", "b", "c", "n", "o", "p", "s"))


class _TokenCodes(dict):
    """Token → code, each distinct token resolved once by RDKit itself (``Chem.AtomFromSmiles``: an
    atom's element is fixed by its token alone)."""

    limit = 50_000  # distinct tokens kept (atom maps make bracket tokens unbounded)

    def __missing__(self, token: str) -> int:
        code = _SLOW
        if token in _ORGANIC_SUBSET or (token[0] == "[" and token[-1] == "]"):
            from rdkit import Chem  # deferred: RDKit

            try:
                atom = Chem.AtomFromSmiles(token)
            except Exception:  # noqa: BLE001 - RDKit raises on some pathological input
                atom = None
            if atom is not None and atom.GetAtomicNum() in ORGANIC_ELEMENTS:
                code = atom.GetAtomicNum() - 1 + (_CHIRAL if "@" in token else 0)
        if len(self) < self.limit:
            self[token] = code
        return code


_CODES = _TokenCodes()

#: Bond-type index by twice the bond order; ``_PSEUDO_ORDER`` carries a type index from the exact path.
_TYPE_BY_TWICE_ORDER = np.array([-1, -1, 0, 3, 1, -1, 2, -1, -1, -1, SELF_LOOP_BOND_TYPE], dtype=np.int64)
_PSEUDO_ORDER = (1.0, 2.0, 3.0, 1.5, 5.0)


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
    tables = _Tables._built or _Tables.get()
    parse, find_atoms, code_of = tables.parse, _ATOM_TOKEN.findall, _CODES.__getitem__
    order_of, orders_ok = tables.order, tables.orders
    begin_of, end_of = tables.begin, tables.end
    notes: list[str] = []
    codes: list[int] = []  # x[:, 0] per atom (+ _CHIRAL where the token has '@')
    begins: list[int] = []
    ends: list[int] = []
    orders: list[float] = []  # bond orders (``_PSEUDO_ORDER`` of a type index from the exact path)
    atom_counts: list[int] = []
    bond_counts: list[int] = []
    chiral_at: list[int] = []  # batch atom index, chirality index
    chiral_value: list[int] = []
    dir_at: list[int] = []  # batch bond index, direction index
    dir_value: list[int] = []
    atoms = bonds = 0
    with BlockLogs():
        for index, item in enumerate(smiles, first):
            mol = None
            if type(item) is str:
                text = item.strip()
                try:
                    mol = parse(text)
                except Exception:  # noqa: BLE001 - RDKit raises on some pathological input
                    mol = None
            n = mol.GetNumAtoms() if mol is not None else 0
            if n == 0:
                mol = parse_smiles(item, where_text(index, total))  # raises, naming the item and why
                text, n = item.strip(), mol.GetNumAtoms()
            tokens = find_atoms(text)
            if len(tokens) == n:  # every atom token is an atom, in order: no hydrogen was removed
                mol_codes = list(map(code_of, tokens))
                top = max(mol_codes)
                if top < _SLOW:
                    nb = mol.GetNumBonds()
                    mol_bonds = list(map(mol.GetBondWithIdx, range(nb)))
                    mol_orders = list(map(order_of, mol_bonds))
                    if orders_ok.issuperset(mol_orders):
                        if top >= _CHIRAL:
                            chiral = list(compress(range(n), map(_CHIRAL.__le__, mol_codes)))
                            get = tables.chirality.get
                            tags = [get(t, -1) for t in map(tables.chiral_tag, map(mol.GetAtomWithIdx, chiral))]
                            if -1 in tags:
                                chiral = None  # a tag the tables cannot hold: the exact path words the note
                            else:
                                chiral_at += map(atoms.__add__, chiral)
                                chiral_value += tags
                        else:
                            chiral = ()
                        if chiral is not None:
                            if "/" in text or "\\" in text:
                                get = tables.bond_dir.get
                                dir_at += range(bonds, bonds + nb)
                                dir_value += [get(d, 0) for d in map(tables.bond_dir_of, mol_bonds)]
                            codes += mol_codes
                            begins += map(begin_of, mol_bonds)
                            ends += map(end_of, mol_bonds)
                            orders += mol_orders
                            atom_counts.append(n)
                            bond_counts.append(nb)
                            atoms += n
                            bonds += nb
                            continue
            # The exact path: every property read as RDKit's enums, unrepresentable features noted.
            z, chirality, begin, end, bond_type, bond_dir = molecule_lists(mol, item, notes, index, total)
            codes += [v - 1 if 1 <= v <= 118 else MISC_ATOM_INDEX for v in z]
            if chirality is not None:
                chiral_at += range(atoms, atoms + len(z))
                chiral_value += chirality
            if bond_dir is not None:
                dir_at += range(bonds, bonds + len(begin))
                dir_value += bond_dir
            begins += begin
            ends += end
            orders += [_PSEUDO_ORDER[t] for t in bond_type]
            atom_counts.append(len(z))
            bond_counts.append(len(begin))
            atoms += len(z)
            bonds += len(begin)
    return _assemble(codes, begins, ends, orders, atom_counts, bond_counts,
                     (chiral_at, chiral_value), (dir_at, dir_value), notes)


def _assemble(codes: list[int], begins: list[int], ends: list[int], orders: list[float], atom_counts: list[int],
              bond_counts: list[int], chiral: tuple, dirs: tuple, notes: list[str]) -> GraphArrays:
    """The batch's arrays, each allocated once and filled from the flat lists in whole-array steps."""
    atom_counts_a = np.array(atom_counts, dtype=np.int64)
    bond_counts_a = np.array(bond_counts, dtype=np.int64)
    atoms, bonds = len(codes), len(begins)
    x = np.zeros((atoms, 2), dtype=np.int64)
    x[:, 0] = np.array(codes, dtype=np.int64) % _CHIRAL
    chiral_at, chiral_value = chiral
    if chiral_at:
        x[chiral_at, 1] = chiral_value
    begin = np.array(begins, dtype=np.int64)
    end = np.array(ends, dtype=np.int64)
    if len(atom_counts) > 1 and bonds:  # each molecule's atom indices shifted by the atoms before it
        starts = np.zeros(len(atom_counts), dtype=np.int64)
        np.cumsum(atom_counts_a[:-1], out=starts[1:])
        shift = np.repeat(starts, bond_counts_a)
        begin += shift
        end += shift
    # Each bond twice, i→j then j→i; with no bonds the shapes stay [2, 0] and [0, 2].
    edge_index = np.empty((2, 2 * bonds), dtype=np.int64)
    edge_index[0, 0::2] = edge_index[1, 1::2] = begin
    edge_index[1, 0::2] = edge_index[0, 1::2] = end
    edge_attr = np.zeros((2 * bonds, 2), dtype=np.int64)
    if bonds:
        bond_type = _TYPE_BY_TWICE_ORDER[(np.array(orders, dtype=np.float64) * 2).astype(np.int64)]
        edge_attr[0::2, 0] = edge_attr[1::2, 0] = bond_type
    dir_at, dir_value = dirs
    if dir_at:
        at = np.array(dir_at, dtype=np.int64) * 2
        edge_attr[at, 1] = edge_attr[at + 1, 1] = dir_value
    return GraphArrays(x, edge_index, edge_attr, atom_counts_a, bond_counts_a, notes)


# ------------------------------------------------------------------------------------- many cores


def default_workers() -> int:
    """Processes for bulk featurization: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


#: Molecules a worker featurizes per task (several chunks): one task's inter-process round trip costs
#: about as much as featurizing a few small molecules.
MOLECULES_PER_TASK = 512


def _task(task: tuple[list[str], int, int, int]) -> tuple[list[GraphArrays], Exception | None]:
    """``graph_arrays`` of each chunk of a task, and the failure that stopped it (``None`` if none):
    the chunks before a failure still reach the caller before the failure is raised."""
    smiles, first, total, chunk = task
    done = []
    for start in range(0, len(smiles), chunk):
        try:
            done.append(graph_arrays(smiles[start:start + chunk], first + start, total))
        except Exception as error:  # noqa: BLE001 - raised by map_chunks in the caller's process
            return done, error
    return done, None


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
    (``pool_context``; each task several chunks, ``MOLECULES_PER_TASK``); a failure (an invalid
    SMILES) is raised here as the worker raised it, after the chunks before it.
    """
    if workers <= 1:
        for i in range(0, len(smiles), chunk):
            yield graph_arrays(smiles[i:i + chunk], i, len(smiles))
        return
    step = chunk * max(1, MOLECULES_PER_TASK // chunk)
    tasks = ((list(smiles[i:i + step]), i, len(smiles), chunk) for i in range(0, len(smiles), step))
    with ProcessPoolExecutor(workers, mp_context=pool_context()) as pool:
        for done, error in pool.map(_task, tasks):
            yield from done
            if error is not None:
                raise error
