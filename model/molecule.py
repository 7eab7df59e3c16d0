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
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import add_self_loops

from biomedgpt.core.errors import CheckpointError, ConfigError, InputError
from biomedgpt.model.featurize import (
    MISC_ATOM_INDEX,
    SELF_LOOP_BOND_TYPE,
    FeaturizationWarning,
    GraphArrays,
    default_workers,
    graph_arrays,
    map_chunks,
)

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
    "featurize_batches",
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
# SELF_LOOP_BOND_TYPE (4: the bond-type index of the self-loops each GIN layer adds, shared by bond types
# outside the four above: DATIVE, IONIC, ZERO, …) and MISC_ATOM_INDEX (118: anything that is not element
# 1..118, e.g. the dummy atom ``*``) live in model/featurize.py with the featurizer, imported above.
#: Jumping-knowledge modes of pretrain-gnns; BioMedGPT uses "last".
JK_MODES = ("last", "concat", "max", "sum")


# ----------------------------------------------------------------------------- featurization


def _emit(notes: list[str]) -> None:
    for note in notes:  # stacklevel 3: the line that called featurize_smiles / iterated featurize_batches
        warnings.warn(note, FeaturizationWarning, stacklevel=3)


@lru_cache(maxsize=1)
def _data_batch_class() -> type:
    """PyG's ``DataBatch`` class. ``Batch(_base_cls=Data)`` looks it up through a metaclass that reads
    ``Data.__init__``'s signature on every call (~70 µs, more than featurizing a small batch); calling
    the class itself with ``type.__call__`` makes the same empty object."""
    return type(Batch(_base_cls=Data))


def _batch(arrays: GraphArrays, smiles: Sequence[str]) -> Batch:
    """Exactly what ``Batch.from_data_list`` of the per-molecule ``Data`` gives (attributes, ``batch``,
    ``ptr`` and the slice/increment records that ``to_data_list``/``get_example`` use), built from one
    set of arrays: PyG's collate of hundreds of small graphs costs more than featurizing them."""
    count = len(smiles)
    ptr = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(arrays.atom_counts, out=ptr[1:])
    edge_ptr = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(arrays.bond_counts, out=edge_ptr[1:])
    edge_ptr *= 2
    batch = type.__call__(_data_batch_class())  # what Batch(_base_cls=Data) makes, minus its per-call class lookup
    batch.x = torch.from_numpy(arrays.x)
    batch.edge_index = torch.from_numpy(arrays.edge_index)
    batch.edge_attr = torch.from_numpy(arrays.edge_attr)
    batch.smiles = list(smiles)
    batch.batch = torch.from_numpy(np.repeat(np.arange(count, dtype=np.int64), arrays.atom_counts))
    batch.ptr = torch.from_numpy(ptr)
    batch._num_graphs = count
    ptr_t = torch.from_numpy(ptr.copy())
    batch._slice_dict = {"x": ptr_t, "edge_index": torch.from_numpy(edge_ptr),
                         "edge_attr": torch.from_numpy(edge_ptr.copy()), "smiles": torch.arange(count + 1)}
    batch._inc_dict = {"x": torch.zeros(count, dtype=torch.long), "edge_index": ptr_t[:-1].clone(),
                       "edge_attr": torch.zeros(count, dtype=torch.long), "smiles": None}
    return batch


def featurize_smiles(smiles: str | Sequence[str]) -> Data | Batch:
    """SMILES → pretrain-gnns / GraphMVP graph: a ``Data`` for one string, a ``Batch`` for a list.

    ``x`` is ``[atoms, 2]`` long: (atomic number − 1, or 118 for misc; chirality index).
    ``edge_attr`` is ``[2 × bonds, 2]`` long: (bond-type index, bond-direction index), every bond
    stored in both directions. Hydrogens stay implicit (no AddHs), as in the released model.
    Unrepresentable chirality tags or bond types are mapped with a ``FeaturizationWarning``.
    An invalid SMILES raises ``InvalidSmilesError`` naming it (and its index in a list).
    The work is ``model/featurize.graph_arrays`` (one pass per molecule, RDKit + numpy only).
    """
    if isinstance(smiles, str):
        arrays = graph_arrays([smiles])
        _emit(arrays.notes)
        return Data(x=torch.from_numpy(arrays.x), edge_index=torch.from_numpy(arrays.edge_index),
                    edge_attr=torch.from_numpy(arrays.edge_attr), smiles=smiles)
    if not isinstance(smiles, Sequence):
        raise InputError(f"featurize_smiles takes a SMILES string or a list of them, got {type(smiles).__name__}")
    if len(smiles) == 0:
        raise InputError("featurize_smiles got an empty list of SMILES")
    arrays = graph_arrays(smiles)
    _emit(arrays.notes)
    return _batch(arrays, smiles)


#: Molecules per batch in bulk work. GIN encoding on one thread is within a few % at 16-64 and slower
#: from 128 on (``bench/featurize.py``: ~750 mol/s at 32-64, ~630 at 128, ~390 at 600); featurizing pays
#: a fixed cost per batch (~0.1 ms), which favours the larger of the fast sizes.
DEFAULT_BATCH_SIZE = 64
#: Below this many molecules per worker a process pool costs more (its start, ~0.3 s) than it saves.
PARALLEL_MIN_PER_WORKER = 4096


def featurize_batches(smiles: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE,
                      workers: int | None = None) -> Iterator[Batch]:
    """Bulk featurization (training, evaluation, index builds): ``Batch`` es of ``batch_size``, in order.

    With ``workers`` > 1 (default: every core when there are at least ``PARALLEL_MIN_PER_WORKER``
    molecules per core) the batches are featurized in worker processes that import only RDKit and
    numpy; the result is the same as ``featurize_smiles`` of each slice, errors and warnings included.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    smiles = list(smiles)
    if workers is None:
        workers = min(default_workers(), len(smiles) // PARALLEL_MIN_PER_WORKER)
    for start, arrays in zip(range(0, len(smiles), batch_size), map_chunks(smiles, batch_size, max(1, workers))):
        _emit(arrays.notes)
        yield _batch(arrays, smiles[start:start + batch_size])


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
