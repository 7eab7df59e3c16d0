"""Molecules for BioMedGPT: SMILES → PyG graph (GraphMVP featurization) → per-atom GIN features.

Use::

    from biomedgpt.model.molecule import featurize_smiles, GINEncoder, load_graphmvp
    graph = featurize_smiles("CC(=O)Oc1ccccc1C(=O)O")          # Data(x=[13, 2], edge_attr=[26, 2])
    gin = load_graphmvp("graphmvp.pth").eval()                   # or GINEncoder() for fresh weights
    atoms = gin.encode(graph)                                     # [13, 300], one row per heavy atom

Why this exact featurization and these exact module names: the released BioMedGPT-10B
(OpenBioMed ``BioMedGPTV``) embeds molecules with the GraphMVP / pretrain-gnns GIN, and users hold
weights for it. Reproducing its two-column integer features and its state-dict names lets a GraphMVP
``.pth`` (or the ``mol_structure_encoder.`` slice of the official checkpoint) load with no renaming.
PyG's own ``GINEConv`` names its parameters differently, hence the ``MessagePassing`` subclass below.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import add_self_loops

from biomedgpt.core.chem import parse_smiles
from biomedgpt.core.errors import CheckpointError, ConfigError, InputError

if TYPE_CHECKING:  # RDKit is imported lazily at first use; only the type names are needed here.
    from rdkit import Chem

__all__ = [
    "NUM_ATOM_TYPE",
    "NUM_CHIRALITY_TAG",
    "NUM_BOND_TYPE",
    "NUM_BOND_DIRECTION",
    "SELF_LOOP_BOND_TYPE",
    "MISC_ATOM_INDEX",
    "JK_MODES",
    "FeaturizationWarning",
    "featurize_smiles",
    "GINConv",
    "GINEncoder",
    "load_graphmvp",
]

#: Rows of ``x_embedding1``: atomic numbers 1..118 → 0..117, 118 = misc (e.g. the dummy atom ``*``),
#: 119 = the mask token of pretrain-gnns' attribute masking (never produced by the featurizer).
NUM_ATOM_TYPE = 120
#: Rows of ``x_embedding2``: CHI_UNSPECIFIED, CHI_TETRAHEDRAL_CW, CHI_TETRAHEDRAL_CCW. The original
#: featurizer could emit 3 (CHI_OTHER), which overflows this table; we map such tags to 0 and warn.
NUM_CHIRALITY_TAG = 3
#: Rows of ``edge_embedding1``: SINGLE, DOUBLE, TRIPLE, AROMATIC, 4 = self-loop / other, 5 = masked.
NUM_BOND_TYPE = 6
#: Rows of ``edge_embedding2``: NONE, ENDUPRIGHT, ENDDOWNRIGHT.
NUM_BOND_DIRECTION = 3
#: Bond-type index of the self-loops each GIN layer adds; bond types outside the four above
#: (DATIVE, IONIC, ZERO, …) share it, as the closest "other" row of the released table.
SELF_LOOP_BOND_TYPE = 4
#: Atom-type index for anything that is not element 1..118 (the dummy atom ``*`` has atomic number 0).
MISC_ATOM_INDEX = 118
#: Jumping-knowledge modes of pretrain-gnns; BioMedGPT uses "last".
JK_MODES = ("last", "concat", "max", "sum")


class FeaturizationWarning(UserWarning):
    """A molecule holds a feature the GraphMVP tables cannot represent; it was mapped to a fallback."""


# ----------------------------------------------------------------------------- featurization


class _Tables:
    """RDKit enum → index tables, built once on first use (so importing this module stays cheap)."""

    _built: _Tables | None = None

    def __init__(self) -> None:
        from rdkit import Chem  # deferred: RDKit, until the first structure is featurized

        ct, bt, bd = Chem.rdchem.ChiralType, Chem.rdchem.BondType, Chem.rdchem.BondDir
        self.chirality = {ct.CHI_UNSPECIFIED: 0, ct.CHI_TETRAHEDRAL_CW: 1, ct.CHI_TETRAHEDRAL_CCW: 2}
        self.bond_type = {bt.SINGLE: 0, bt.DOUBLE: 1, bt.TRIPLE: 2, bt.AROMATIC: 3}
        # Other directions (BEGINWEDGE, BEGINDASH, EITHERDOUBLE, UNKNOWN) are 2-D drawing hints that
        # SMILES parsing does not produce; the stereo they imply is already in the chirality tag.
        self.bond_dir = {bd.NONE: 0, bd.ENDUPRIGHT: 1, bd.ENDDOWNRIGHT: 2}

    @classmethod
    def get(cls) -> _Tables:
        if cls._built is None:
            cls._built = cls()
        return cls._built


def _mol_to_data(mol: Chem.Mol, smiles: str, where: str) -> Data:
    # Index-based access (GetAtomWithIdx), one list comprehension per property, numpy assembly:
    # RDKit's GetAtoms() wrapper and row-by-row tensors cost more than the SMILES parse itself.
    tables = _Tables.get()
    atoms = [mol.GetAtomWithIdx(i) for i in range(mol.GetNumAtoms())]
    bonds = [mol.GetBondWithIdx(i) for i in range(mol.GetNumBonds())]

    z = np.array([a.GetAtomicNum() for a in atoms], dtype=np.int64)
    chirality = np.array([tables.chirality.get(a.GetChiralTag(), -1) for a in atoms], dtype=np.int64)
    begin = np.array([b.GetBeginAtomIdx() for b in bonds], dtype=np.int64)
    end = np.array([b.GetEndAtomIdx() for b in bonds], dtype=np.int64)
    bond_type = np.array([tables.bond_type.get(b.GetBondType(), -1) for b in bonds], dtype=np.int64)
    bond_dir = np.array([tables.bond_dir.get(b.GetBondDir(), 0) for b in bonds], dtype=np.int64)

    notes = [
        f"atom {i} ({atoms[i].GetSymbol()}) chirality {atoms[i].GetChiralTag().name} → 0"
        for i in np.flatnonzero(chirality < 0)
    ] + [
        f"bond {begin[k]}-{end[k]} type {bonds[k].GetBondType().name} → {SELF_LOOP_BOND_TYPE} (other)"
        for k in np.flatnonzero(bond_type < 0)
    ]
    if notes:
        chirality[chirality < 0] = 0
        bond_type[bond_type < 0] = SELF_LOOP_BOND_TYPE
        warnings.warn(
            f"SMILES {smiles!r}{where}: mapped what the GraphMVP tables cannot represent: " + "; ".join(notes),
            FeaturizationWarning,
            stacklevel=3,
        )

    x = np.empty((len(atoms), 2), dtype=np.int64)
    x[:, 0] = np.where((z >= 1) & (z <= 118), z - 1, MISC_ATOM_INDEX)
    x[:, 1] = chirality
    # Each bond twice, i→j then j→i; with no bonds the shapes stay [2, 0] and [0, 2].
    edge_index = np.empty((2, 2 * len(bonds)), dtype=np.int64)
    edge_index[0, 0::2] = edge_index[1, 1::2] = begin
    edge_index[1, 0::2] = edge_index[0, 1::2] = end
    edge_attr = np.empty((2 * len(bonds), 2), dtype=np.int64)
    edge_attr[0::2, 0] = edge_attr[1::2, 0] = bond_type
    edge_attr[0::2, 1] = edge_attr[1::2, 1] = bond_dir
    return Data(
        x=torch.from_numpy(x),
        edge_index=torch.from_numpy(edge_index),
        edge_attr=torch.from_numpy(edge_attr),
        smiles=smiles,
    )


def featurize_smiles(smiles: str | Sequence[str]) -> Data | Batch:
    """SMILES → pretrain-gnns / GraphMVP graph: a ``Data`` for one string, a ``Batch`` for a list.

    ``x`` is ``[atoms, 2]`` long: (atomic number − 1, or 118 for misc; chirality index).
    ``edge_attr`` is ``[2 × bonds, 2]`` long: (bond-type index, bond-direction index), every bond
    stored in both directions. Hydrogens stay implicit (no AddHs), as in the released model.
    Unrepresentable chirality tags or bond types are mapped with a ``FeaturizationWarning``.
    An invalid SMILES raises ``InvalidSmilesError`` naming it (and its index in a list).
    """
    from rdkit.rdBase import BlockLogs  # deferred: RDKit

    if isinstance(smiles, str):
        with BlockLogs():  # our error names the SMILES; RDKit's own stderr lines would only be noise
            return _mol_to_data(parse_smiles(smiles), smiles, "")
    if not isinstance(smiles, Sequence):
        raise InputError(f"featurize_smiles takes a SMILES string or a list of them, got {type(smiles).__name__}")
    if len(smiles) == 0:
        raise InputError("featurize_smiles got an empty list of SMILES")
    graphs = []
    with BlockLogs():
        for index, item in enumerate(smiles):
            where = f" (item {index + 1} of {len(smiles)})" if len(smiles) > 1 else ""
            graphs.append(_mol_to_data(parse_smiles(item, where), item, where))
    return Batch.from_data_list(graphs)


# ----------------------------------------------------------------------------- the GIN


class GINConv(MessagePassing):
    """One GraphMVP GIN layer: h_i' = MLP(Σ_{j ∈ N(i) ∪ {i}} (h_j + e_ij)), edge embedding e = E1[type] + E2[dir].

    Self-loops carry bond type ``SELF_LOOP_BOND_TYPE`` and direction 0, as in pretrain-gnns.
    Parameter names (``mlp``, ``edge_embedding1``, ``edge_embedding2``) equal GraphMVP's.
    """

    def __init__(self, emb_dim: int, aggr: str = "add") -> None:
        super().__init__(aggr=aggr)
        self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.ReLU(), nn.Linear(2 * emb_dim, emb_dim))
        self.edge_embedding1 = nn.Embedding(NUM_BOND_TYPE, emb_dim)
        self.edge_embedding2 = nn.Embedding(NUM_BOND_DIRECTION, emb_dim)
        nn.init.xavier_uniform_(self.edge_embedding1.weight.data)
        nn.init.xavier_uniform_(self.edge_embedding2.weight.data)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        num_nodes = x.size(0)
        edge_index, _ = add_self_loops(edge_index, num_nodes=num_nodes)
        loop_attr = torch.zeros(num_nodes, 2, dtype=edge_attr.dtype, device=edge_attr.device)
        loop_attr[:, 0] = SELF_LOOP_BOND_TYPE
        edge_attr = torch.cat((edge_attr, loop_attr), dim=0)
        edge_embeddings = self.edge_embedding1(edge_attr[:, 0]) + self.edge_embedding2(edge_attr[:, 1])
        return self.propagate(edge_index, x=x, edge_attr=edge_embeddings)

    def message(self, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return x_j + edge_attr

    def update(self, aggr_out: Tensor) -> Tensor:
        return self.mlp(aggr_out)


class GINEncoder(nn.Module):
    """The GraphMVP / pretrain-gnns GIN (``GNN`` with gnn_type="gin"): per-atom features.

    BioMedGPT uses 5 layers, width 300, JK "last", dropout 0. ReLU follows every layer's batch norm
    except the last one's. ``output_dim`` is ``emb_dim`` (``(num_layer + 1) · emb_dim`` for "concat").
    Unlike the original, JK "sum" returns the per-atom sum (the original indexed ``[0]`` after
    summing, which kept only the first atom's row).
    """

    def __init__(self, num_layer: int = 5, emb_dim: int = 300, drop_ratio: float = 0.0, JK: str = "last") -> None:
        super().__init__()
        if num_layer < 2:
            raise ConfigError(f"GINEncoder needs at least 2 layers, got num_layer={num_layer}")
        if emb_dim < 1:
            raise ConfigError(f"GINEncoder emb_dim must be positive, got {emb_dim}")
        if JK not in JK_MODES:
            raise ConfigError(f"GINEncoder JK={JK!r} is not one of {', '.join(JK_MODES)}")
        self.num_layer = num_layer
        self.emb_dim = emb_dim
        self.drop_ratio = drop_ratio
        self.JK = JK
        self.output_dim = emb_dim * (num_layer + 1) if JK == "concat" else emb_dim

        self.x_embedding1 = nn.Embedding(NUM_ATOM_TYPE, emb_dim)
        self.x_embedding2 = nn.Embedding(NUM_CHIRALITY_TAG, emb_dim)
        nn.init.xavier_uniform_(self.x_embedding1.weight.data)
        nn.init.xavier_uniform_(self.x_embedding2.weight.data)
        self.gnns = nn.ModuleList([GINConv(emb_dim, aggr="add") for _ in range(num_layer)])
        self.batch_norms = nn.ModuleList([nn.BatchNorm1d(emb_dim) for _ in range(num_layer)])

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        """``x`` [atoms, 2], ``edge_index`` [2, E], ``edge_attr`` [E, 2] (all long) → ``[atoms, output_dim]``."""
        h = self.x_embedding1(x[:, 0]) + self.x_embedding2(x[:, 1])
        h_list = [h]
        for layer in range(self.num_layer):
            h = self.batch_norms[layer](self.gnns[layer](h_list[layer], edge_index, edge_attr))
            if layer < self.num_layer - 1:
                h = F.relu(h)
            h_list.append(F.dropout(h, self.drop_ratio, training=self.training))
        if self.JK == "last":
            return h_list[-1]
        if self.JK == "concat":
            return torch.cat(h_list, dim=1)
        stacked = torch.stack(h_list, dim=0)
        return stacked.max(dim=0).values if self.JK == "max" else stacked.sum(dim=0)

    def encode(self, graph: Data | Batch) -> Tensor:
        """Per-atom features of a featurized molecule or batch (rows follow ``graph.x``; use ``graph.batch``)."""
        device = self.x_embedding1.weight.device
        return self(graph.x.to(device), graph.edge_index.to(device), graph.edge_attr.to(device))


# ----------------------------------------------------------------------------- checkpoints

#: Wrappers and prefixes under which GIN weights are commonly saved (training scripts, OpenBioMed).
_STATE_DICT_WRAPPERS = ("state_dict", "model", "model_state_dict")
_STATE_DICT_PREFIXES = ("module.", "main_model.", "mol_structure_encoder.", "molecule_model.")


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, dict):
        for key in _STATE_DICT_WRAPPERS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(f"{path} does not hold a state dict (got {type(obj).__name__})")
    state = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    for prefix in _STATE_DICT_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _infer_shape(state: dict[str, Tensor], path: Path) -> tuple[int, int]:
    """(num_layer, emb_dim) from the tensors, so 5×300 and other GraphMVP sizes all load."""
    if "x_embedding1.weight" not in state:
        keys = ", ".join(sorted(state)[:8]) or "none"
        raise CheckpointError(f"{path} is not a GraphMVP GIN state dict: no 'x_embedding1.weight' (keys: {keys}, …)")
    emb_dim = int(state["x_embedding1.weight"].shape[1])
    layers = {int(k.split(".")[1]) for k in state if k.startswith("gnns.") and k.split(".")[1].isdigit()}
    return (max(layers) + 1 if layers else 0), emb_dim


def load_graphmvp(path: str | Path, *, strict: bool = True) -> GINEncoder:
    """Load a GraphMVP / pretrain-gnns GIN ``.pth`` state dict into a ``GINEncoder`` (on CPU).

    The depth and width come from the file. ``strict=True`` (default) makes any missing or
    unexpected key a ``CheckpointError`` that lists them; with ``strict=False`` missing keys keep
    their fresh initialisation (with a warning) and unexpected keys are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"GraphMVP checkpoint {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(f"cannot read GraphMVP checkpoint {path}: {type(error).__name__}: {error}") from error
    state = _unwrap_state_dict(obj, path)
    num_layer, emb_dim = _infer_shape(state, path)
    if num_layer < 2:
        raise CheckpointError(f"{path} holds {num_layer} GIN layers; GraphMVP has at least 2")
    model = GINEncoder(num_layer=num_layer, emb_dim=emb_dim)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches are raised even with strict=False
        raise CheckpointError(f"{path} does not fit a {num_layer}×{emb_dim} GIN: {error}") from error
    if strict and (result.missing_keys or result.unexpected_keys):
        parts = []
        if result.missing_keys:
            parts.append("missing keys: " + ", ".join(result.missing_keys))
        if result.unexpected_keys:
            parts.append("unexpected keys: " + ", ".join(result.unexpected_keys))
        raise CheckpointError(f"{path} does not match the GraphMVP GIN: " + "; ".join(parts))
    if result.missing_keys:
        warnings.warn(
            f"{path}: missing {', '.join(result.missing_keys)}; those weights keep their fresh initialisation",
            UserWarning,
            stacklevel=2,
        )
    return model
