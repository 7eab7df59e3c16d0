"""The GraphMVP GIN: state-dict layout, the message-passing rule, outputs, and checkpoint loading.

Run: ``.venv/bin/python -m pytest -q tests/model/test_gin.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from biomedgpt.core.errors import CheckpointError, ConfigError
from biomedgpt.model.molecule import SELF_LOOP_BOND_TYPE, GINConv, GINEncoder, featurize_smiles, load_graphmvp

EXPECTED = Path(__file__).resolve().parents[1] / "data" / "gin_graphmvp_state_dict.json"


@pytest.fixture(scope="module")
def gin() -> GINEncoder:
    torch.manual_seed(0)
    model = GINEncoder().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode is not an identity
        for bn in model.batch_norms:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return model


def test_state_dict_equals_graphmvp_layout(gin):
    expected = json.loads(EXPECTED.read_text())["keys"]
    actual = {k: list(v.shape) for k, v in gin.state_dict().items()}
    assert list(actual) == list(expected)  # same names, same order
    assert actual == expected


def test_output_is_one_row_per_heavy_atom(gin):
    graph = featurize_smiles("CC(=O)Oc1ccccc1C(=O)O")  # aspirin: 13 heavy atoms
    with torch.no_grad():
        out = gin.encode(graph)
    assert tuple(out.shape) == (13, 300)
    assert torch.isfinite(out).all()


def test_batch_equals_molecules_one_by_one(gin):
    smiles = ["CCO", "C", "[Na+].[Cl-]", "c1ccncc1"]
    with torch.no_grad():
        batched = gin.encode(featurize_smiles(smiles))
        single = torch.cat([gin.encode(featurize_smiles(s)) for s in smiles])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_ginconv_follows_the_graphmvp_rule():
    torch.manual_seed(1)
    conv = GINConv(4)
    graph = featurize_smiles("C=CO")  # atoms 0,1,2; bonds 0=1 double, 1-2 single
    x = torch.randn(3, 4)
    e1, e2 = conv.edge_embedding1.weight, conv.edge_embedding2.weight
    loop = e1[SELF_LOOP_BOND_TYPE] + e2[0]
    double, single = e1[1] + e2[0], e1[0] + e2[0]
    aggregated = torch.stack(
        [
            (x[1] + double) + (x[0] + loop),
            (x[0] + double) + (x[2] + single) + (x[1] + loop),
            (x[1] + single) + (x[2] + loop),
        ]
    )
    with torch.no_grad():
        torch.testing.assert_close(conv(x, graph.edge_index, graph.edge_attr), conv.mlp(aggregated))


def test_relu_on_all_but_last_layer(gin):
    graph = featurize_smiles("CCN")
    with torch.no_grad():
        out = gin.encode(graph)
    assert (out < 0).any()  # the last layer has no ReLU


@pytest.mark.parametrize("jk, width", [("concat", 6 * 16), ("max", 16), ("sum", 16), ("last", 16)])
def test_jumping_knowledge_modes(jk, width):
    model = GINEncoder(num_layer=5, emb_dim=16, JK=jk).eval()
    assert model.output_dim == width
    with torch.no_grad():
        assert tuple(model.encode(featurize_smiles("CCO")).shape) == (3, width)


def test_bad_configs_are_errors():
    with pytest.raises(ConfigError, match="JK"):
        GINEncoder(JK="mean")
    with pytest.raises(ConfigError, match="at least 2"):
        GINEncoder(num_layer=1)


def test_load_graphmvp_round_trips(gin, tmp_path):
    path = tmp_path / "graphmvp.pth"
    torch.save(gin.state_dict(), path)
    loaded = load_graphmvp(path).eval()
    graph = featurize_smiles(["CC(=O)O", "c1ccccc1"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(graph), gin.encode(graph), rtol=0, atol=0)


def test_load_graphmvp_accepts_wrapped_and_prefixed_dicts(gin, tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"mol_structure_encoder.{k}": v for k, v in gin.state_dict().items()}}, path)
    loaded = load_graphmvp(path)
    torch.testing.assert_close(loaded.x_embedding1.weight, gin.x_embedding1.weight)


def test_load_graphmvp_infers_size(tmp_path):
    small = GINEncoder(num_layer=3, emb_dim=8)
    path = tmp_path / "small.pth"
    torch.save(small.state_dict(), path)
    loaded = load_graphmvp(path)
    assert (loaded.num_layer, loaded.emb_dim) == (3, 8)


def test_load_graphmvp_names_wrong_keys(gin, tmp_path):
    state = dict(gin.state_dict())
    state["gnns.2.edge_embeding1.weight"] = state.pop("gnns.2.edge_embedding1.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_graphmvp(path)
    message = str(info.value)
    assert "missing keys: gnns.2.edge_embedding1.weight" in message
    assert "unexpected keys: gnns.2.edge_embeding1.weight" in message
    with pytest.warns(UserWarning, match="gnns.2.edge_embedding1.weight"):
        load_graphmvp(path, strict=False)


def test_load_graphmvp_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_graphmvp(tmp_path / "absent.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_graphmvp(corrupt)
    other = tmp_path / "other.pth"
    torch.save({"linear.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(CheckpointError, match="x_embedding1"):
        load_graphmvp(other)
    wrong_shape = tmp_path / "wrong_shape.pth"
    state = GINEncoder(num_layer=2, emb_dim=8).state_dict()
    state["gnns.0.mlp.0.weight"] = torch.zeros(5, 8)
    torch.save(state, wrong_shape)
    with pytest.raises(CheckpointError, match="gnns.0.mlp.0.weight"):
        load_graphmvp(wrong_shape)
