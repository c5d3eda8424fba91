"""Circuit allocation, assembly, export/import and graph export (no model is loaded)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from circuits.circuit import (
    CIRCUIT_JSON_SCHEMA,
    SCHEMA_VERSION,
    AllocationConfig,
    Circuit,
    CircuitFormatError,
    LayerCircuit,
    allocate,
    assemble_circuit,
    load_circuits,
    overlap,
    save_circuits,
    validate_circuit_json,
)
from circuits.core.artifacts import ModelMismatch
from circuits.core.emotions import UnknownEmotionError
from circuits.core.model import ArchInfo

ARCH = ArchInfo(
    architecture="TestForCausalLM",
    n_layers=4,
    n_heads=8,
    n_kv_heads=4,
    d_model=64,
    d_head=16,
    d_mlp=32,
    d_vocab=100,
    gated_mlp=True,
    post_norms=False,
)
FP = "0123456789abcdef"
MODEL_INFO = {"name": "test-model", "fingerprint": FP, "arch": ARCH}


def _inputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "influence_attn": np.array([1.0, 1.0, 2.0, 0.0]),
        "influence_mlp": np.array([1.0, 0.0, -2.0, 3.0]),
        "neuron_scores": rng.normal(size=(4, 32)),
        "head_scores": rng.normal(size=(4, 8)),
        "delta_mu_mlp": rng.normal(size=(4, 32)).astype(np.float32),
        "delta_mu_heads": rng.normal(size=(4, 8, 16)).astype(np.float32),
    }


@pytest.fixture
def circuit() -> Circuit:
    return assemble_circuit("anger", model_info=MODEL_INFO, meta={"dataset_sha256": "abc", "n_rows": 12}, **_inputs())


def _hand_circuit(emotion: str, neurons: dict[int, list[int]], heads: dict[int, list[int]]) -> Circuit:
    layers, delta_mu = [], {}
    for L in range(ARCH.n_layers):
        n, h = neurons.get(L, []), heads.get(L, [])
        layers.append(
            LayerCircuit(
                L, list(n), [1.0 * (i + 1) for i in range(len(n))], list(h), [0.5 * (i + 1) for i in range(len(h))]
            )
        )
        delta_mu[f"mlp.{L}"] = torch.arange(len(n), dtype=torch.float32)
        delta_mu[f"attn.{L}"] = torch.ones(len(h), ARCH.d_head)
    return Circuit(
        emotion=emotion,
        model={"name": "test-model", "fingerprint": FP, "arch": ARCH.to_dict()},
        allocation=AllocationConfig(),
        layers=layers,
        influence={"attn": [0.0] * 4, "mlp": [0.0] * 4},
        delta_mu=delta_mu,
        meta={},
    )


def _rewrite(path: Path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


# ------------------------------------------------------------------------------------ allocate


def test_allocate_proportional_largest_remainder():
    # base 2 each, rest 12 -> quotas 1.2, 2.4, 3.6, 4.8 -> floors 1,2,3,4, two extra to .8 and .6
    assert allocate([1, 2, 3, 4], 20, 2, 8, 100) == [3, 4, 6, 7]
    # equal remainders (10/3 each): the extra unit goes to the lowest index
    assert allocate([1, 1, 1], 10, 0, None, 100) == [4, 3, 3]
    # quotas 0.5, 0.5, 1.0 -> floors 0, 0, 1; one unit left, tied remainders -> lower index
    assert allocate([1.0, 1.0, 2.0], 2, 0, None, 10) == [1, 0, 1]


def test_allocate_cap_and_backfill():
    # base 2 each, rest 12 -> 0,0,1,11 (+1 to L3 by remainder) -> L3 capped at 8, 5 spill to L2 (next weight)
    assert allocate([0, 0, 1, 9], 20, 2, 8, 100) == [2, 2, 8, 8]
    # spill beyond the next layer's room goes on down the weight order, ties by room then index
    # base 4 each, rest 40 -> 14, 4, 4, 34 -> L3 capped at 22 (spill 12) -> L0 +8 to 22, then L1 (w=0) +4
    assert allocate([1, 0, 0, 3], 56, 4, 22, 32) == [22, 8, 4, 22]


def test_allocate_zero_weights_split_evenly():
    assert allocate([0, 0, 0, 0], 10, 1, 100, 100) == [3, 3, 2, 2]
    assert allocate([0.0] * 4, 8, 0, None, 100) == [2, 2, 2, 2]


def test_allocate_capacity_below_total():
    assert allocate([1, 1, 1], 50, 0, None, [5, 10, 20]) == [5, 10, 20]
    assert allocate([1, 2], 100, 0, 3, 8) == [8, 8]


def test_allocate_caps_that_cannot_hold_the_total_are_exceeded():
    # base 4,4; rest 20 -> 9, 19 -> cap 11: 9, 11 spill 8 -> L0 to 11 -> 6 left -> beyond cap, largest weight (L1)
    assert allocate([1, 3], 28, 4, 11, 100) == [11, 17]


def test_allocate_minimums_lowered_and_capacity_bounded():
    # minimum 4 x 4 layers > 6: lowered to 1 each, rest 2 split evenly (ties to the lower index)
    assert allocate([1, 1, 1, 1], 6, 4, None, 100) == [2, 2, 1, 1]
    # L0 holds only 1: base [1, 4], rest 5 -> 3 and 2, L0 over capacity -> spill 3 into L1
    assert allocate([1, 1], 10, 4, None, [1, 20]) == [1, 9]
    # cap below the minimum does not push a layer below its minimum
    assert allocate([0, 1], 8, 3, 2, 10) == [3, 5]


def test_allocate_sums_and_bounds_random():
    rng = random.Random(7)
    for _ in range(500):
        n = rng.randint(1, 7)
        weights = [rng.choice([0.0, rng.random() * 5]) for _ in range(n)]
        capacity = [rng.randint(0, 12) for _ in range(n)]
        total, minimum, cap = rng.randint(0, 60), rng.randint(0, 5), rng.choice([None, rng.randint(0, 15)])
        out = allocate(weights, total, minimum, cap, capacity)
        assert sum(out) == min(total, sum(capacity))
        assert all(0 <= o <= c for o, c in zip(out, capacity))
        if sum(min(minimum, c) for c in capacity) <= total:
            assert all(o >= min(minimum, c) for o, c in zip(out, capacity))
        if cap is not None:
            limits = [min(c, max(cap, minimum)) for c in capacity]
            if sum(limits) >= total:
                assert all(o <= lim for o, lim in zip(out, limits))
        assert allocate(weights, total, minimum, cap, capacity) == out  # deterministic


def test_allocate_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        allocate([1.0, -0.5], 4, 0, None, 10)
    with pytest.raises(ValueError, match="finite"):
        allocate([float("nan")], 4, 0, None, 10)
    with pytest.raises(ValueError, match="capacity has 1 entries"):
        allocate([1.0, 1.0], 4, 0, None, [3])


# ------------------------------------------------------------------------------------ config


def test_allocation_config_budget_and_dict():
    cfg = AllocationConfig()
    assert cfg.budget(4) == {"total": 80, "neurons": 56, "heads": 24, "neuron_cap": 22, "head_cap": 9}
    assert AllocationConfig(budget_per_sublayer=5, neuron_share=0.25).budget(1)["neurons"] == 3  # 2.5 -> 3
    assert AllocationConfig(cap_fraction=0.29, budget_per_sublayer=50, neuron_share=1.0).budget(1)["neuron_cap"] == 29
    assert AllocationConfig.from_dict(cfg.to_dict()) == cfg
    assert AllocationConfig.from_dict({"min_heads": 1}).min_heads == 1
    with pytest.raises(
        ValueError, match="AllocationConfig: unknown field.*'budget'.*known fields: budget_per_sublayer"
    ):
        AllocationConfig.from_dict({"budget": 3})
    for bad in (
        {"budget_per_sublayer": 0},
        {"neuron_share": 1.5},
        {"min_neurons": -1},
        {"cap_fraction": 0.0},
        {"min_heads": 1.5},
        {"budget_per_sublayer": True},
    ):
        with pytest.raises(ValueError, match="AllocationConfig." + next(iter(bad))):
            AllocationConfig(**bad)


# ------------------------------------------------------------------------------------ assemble


def test_assemble_counts_and_top_k(circuit):
    inp = _inputs()
    # neurons: weights [1,0,0,3], K=56, min 4, cap 22 (see test_allocate_cap_and_backfill)
    assert [len(lc.neurons) for lc in circuit.layers] == [22, 8, 4, 22]
    # heads: weights [1,1,2,0], K=24, min 2, cap min(9, 8): base 2, rest 16 -> 6,6,10,2 -> L2 to 8, spill 2 -> L0
    assert [len(lc.heads) for lc in circuit.layers] == [8, 6, 8, 2]
    assert circuit.n_neurons == 56 and circuit.n_heads == 24
    for L, lc in enumerate(circuit.layers):
        assert lc.layer == L
        k = len(lc.neurons)
        expected = np.argsort(-inp["neuron_scores"][L], kind="stable")[:k].tolist()
        assert lc.neurons == expected
        assert lc.neuron_scores == inp["neuron_scores"][L][expected].tolist()
        if k < ARCH.d_mlp:
            rest = np.delete(inp["neuron_scores"][L], expected)
            assert min(lc.neuron_scores) > rest.max()
        exp_heads = np.argsort(-inp["head_scores"][L], kind="stable")[: len(lc.heads)].tolist()
        assert lc.heads == exp_heads
        assert lc.head_scores == inp["head_scores"][L][exp_heads].tolist()
        assert torch.equal(circuit.delta_mu[f"mlp.{L}"], torch.from_numpy(inp["delta_mu_mlp"][L][expected]))
        assert torch.equal(circuit.delta_mu[f"attn.{L}"], torch.from_numpy(inp["delta_mu_heads"][L][exp_heads]))
        assert circuit.delta_mu[f"attn.{L}"].shape == (len(lc.heads), 16)
    assert circuit.neuron_index()[2] == circuit.layers[2].neurons
    assert circuit.head_index()[3] == circuit.layers[3].heads
    assert circuit.influence == {"attn": [1.0, 1.0, 2.0, 0.0], "mlp": [1.0, 0.0, -2.0, 3.0]}
    assert circuit.model == {"name": "test-model", "fingerprint": FP, "arch": ARCH.to_dict()}


def test_assemble_ties_and_torch_inputs():
    inp = _inputs()
    inp["neuron_scores"][0] = 0.0
    inp["neuron_scores"][0, 30] = 5.0
    c = assemble_circuit("fear", model_info=MODEL_INFO, **inp)
    assert c.layers[0].neurons == [30] + list(range(21))  # ties go to the lower index
    t = assemble_circuit("fear", model_info=MODEL_INFO, **{k: torch.from_numpy(v) for k, v in inp.items()})
    assert t == c
    assert c.emotion == "fear"


def test_assemble_validates():
    inp = _inputs()
    bad = dict(inp, neuron_scores=np.zeros((4, 31)))
    with pytest.raises(ValueError, match=r"neuron_scores: expected shape \[n_layers, d_mlp\] = \[4, 32\].*\[4, 31\]"):
        assemble_circuit("anger", model_info=MODEL_INFO, **bad)
    bad = dict(inp, delta_mu_heads=np.zeros((4, 8, 15)))
    with pytest.raises(ValueError, match="delta_mu_heads"):
        assemble_circuit("anger", model_info=MODEL_INFO, **bad)
    bad = dict(inp, influence_mlp=np.array([1.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="influence_mlp: contains NaN"):
        assemble_circuit("anger", model_info=MODEL_INFO, **bad)
    with pytest.raises(UnknownEmotionError, match="joy"):
        assemble_circuit("joy", model_info=MODEL_INFO, **inp)
    with pytest.raises(ValueError, match="fingerprint"):
        assemble_circuit("anger", model_info={"name": "x", "arch": ARCH}, **inp)


# ------------------------------------------------------------------------------------ save / load


def test_save_load_round_trip(circuit, tmp_path):
    path = circuit.save(tmp_path / "anger.json")
    sidecar = tmp_path / "anger.safetensors"
    assert path == tmp_path / "anger.json" and sidecar.is_file()
    obj = json.loads(path.read_text())
    assert obj["schema_version"] == SCHEMA_VERSION == 2 and obj["kind"] == "emotion-circuit"
    assert "faithfulness" not in obj  # not measured
    assert obj["budget"] == {"total": 80, "neurons": 56, "heads": 24}
    assert obj["delta_mu_file"] == "anger.safetensors"
    assert obj["layers"][1]["mlp"]["k"] == 8 and obj["layers"][3]["attention"]["heads"] == circuit.layers[3].heads
    assert obj["meta"] == {"dataset_sha256": "abc", "n_rows": 12}
    assert validate_circuit_json(obj) == []
    loaded = Circuit.load(path)
    assert loaded == circuit
    for key, t in circuit.delta_mu.items():
        assert torch.equal(loaded.delta_mu[key], t)
    model = SimpleNamespace(name="test-model", fingerprint=FP, arch=ARCH)
    assert Circuit.load(path, model=model) == circuit
    assert not list(tmp_path.glob("*.tmp"))


def test_equality_sees_tensor_changes(circuit):
    other = Circuit(**{**circuit.__dict__, "delta_mu": {k: v.clone() for k, v in circuit.delta_mu.items()}})
    assert other == circuit
    other.delta_mu["mlp.0"][0] += 1.0
    assert other != circuit


def test_load_unknown_schema_version(circuit, tmp_path):
    path = circuit.save(tmp_path / "anger.json")
    _rewrite(path, lambda o: o.update(schema_version=3))
    with pytest.raises(CircuitFormatError, match=r"unknown schema_version 3 \(this library reads 1, 2\)") as err:
        Circuit.load(path)
    assert str(path) in str(err.value)


def _faithfulness_block() -> dict:
    seeds = {"mean": 0.2, "std": 0.05, "seeds": [0.15, 0.25]}
    return {
        "metric": "emotion_score_last_token",
        "ablation": "mean",
        "rows": 12,
        "scores": {"full": 2.0, "empty": -1.0, "circuit": 1.4, "ablated": 0.1},
        "faithfulness": 0.8,
        "ablation_loss": 0.6333,
        "random": {"faithfulness": seeds, "ablation_loss": seeds, "n_seeds": 2},
    }


def test_faithfulness_block_round_trips_and_version_1_files_still_load(circuit, tmp_path):
    circuit.faithfulness = _faithfulness_block()
    path = circuit.save(tmp_path / "anger.json")
    assert json.loads(path.read_text())["faithfulness"]["faithfulness"] == 0.8
    assert Circuit.load(path) == circuit
    # a file of the previous format: version 1, no faithfulness block
    _rewrite(path, lambda o: (o.update(schema_version=1), o.pop("faithfulness")))
    old = Circuit.load(path)
    assert old.faithfulness is None and old.layers == circuit.layers
    # version 1 never had the block; a broken block names its field
    _rewrite(path, lambda o: o.update(faithfulness=_faithfulness_block()))
    with pytest.raises(CircuitFormatError, match="faithfulness: not part of schema_version 1"):
        Circuit.load(path)
    bad = _faithfulness_block()
    del bad["scores"]["empty"]
    _rewrite(path, lambda o: o.update(schema_version=2, faithfulness=bad))
    with pytest.raises(CircuitFormatError, match=r"faithfulness\.scores\.empty: required field missing"):
        Circuit.load(path)


def test_load_wrong_fingerprint(circuit, tmp_path):
    path = circuit.save(tmp_path / "anger.json")
    other = SimpleNamespace(name="other-model", fingerprint="ffffffffffffffff", arch=ARCH)
    with pytest.raises(ModelMismatch) as err:
        Circuit.load(path, model=other)
    msg = str(err.value)
    assert FP in msg and "ffffffffffffffff" in msg and "'test-model'" in msg and str(path) in msg


def test_load_index_out_of_range(circuit, tmp_path):
    path = circuit.save(tmp_path / "anger.json")
    _rewrite(path, lambda o: o["layers"][3]["mlp"]["neurons"].__setitem__(0, 32))
    with pytest.raises(
        CircuitFormatError, match=r"layers\[3\]\.mlp\.neurons\[0\]: neuron index 32 out of range"
    ) as err:
        Circuit.load(path)
    assert str(path) in str(err.value)

    circuit.save(path)
    _rewrite(path, lambda o: o["layers"][1]["attention"]["heads"].__setitem__(2, 8))
    with pytest.raises(CircuitFormatError, match=r"layers\[1\]\.attention\.heads\[2\]: head index 8 out of range"):
        Circuit.load(path)

    circuit.save(path)
    first = circuit.layers[0].neurons[0]
    _rewrite(path, lambda o: o["layers"][0]["mlp"]["neurons"].__setitem__(1, first))
    with pytest.raises(CircuitFormatError, match=rf"layers\[0\]\.mlp\.neurons\[1\]: duplicate neuron index {first}"):
        Circuit.load(path)


def test_load_field_problems_name_the_json_path(circuit, tmp_path):
    path = circuit.save(tmp_path / "anger.json")

    def edit(o):
        del o["layers"][1]["attention"]["scores"]
        o["layers"][2]["mlp"]["scores"].pop()
        o["layers"][0]["mlp"]["neurons"][0] = "7"
        o["influence"]["mlp"] = [0.0]

    _rewrite(path, edit)
    with pytest.raises(CircuitFormatError) as err:
        Circuit.load(path)
    problems = err.value.problems
    assert "layers[1].attention.scores: required field missing" in problems
    assert "layers[2].mlp.scores: 3 entries but neurons has 4" in problems
    assert any(p.startswith("layers[0].mlp.neurons[0]: expected integer") for p in problems)
    assert "influence.mlp: 1 entries, expected n_layers=4" in problems
    assert len(problems) == 4


def test_load_missing_sidecar(circuit, tmp_path):
    path = circuit.save(tmp_path / "anger.json")
    (tmp_path / "anger.safetensors").unlink()
    with pytest.raises(CircuitFormatError, match="sidecar .*anger.safetensors.* not found"):
        Circuit.load(path)


def test_load_sidecar_shape_mismatch(circuit, tmp_path):
    from safetensors.torch import save_file

    path = circuit.save(tmp_path / "anger.json")
    tensors = dict(circuit.delta_mu)
    tensors["attn.2"] = torch.zeros(8, 15)
    save_file(tensors, str(tmp_path / "anger.safetensors"))
    with pytest.raises(CircuitFormatError, match=r"delta_mu\['attn.2'\]: shape \[8, 15\], expected \[8, 16\]"):
        Circuit.load(path)


def test_load_unknown_emotion_and_bad_files(circuit, tmp_path):
    path = circuit.save(tmp_path / "anger.json")
    _rewrite(path, lambda o: o.update(emotion="joy"))
    with pytest.raises(CircuitFormatError, match="emotion: 'joy' is not one of anger, sadness"):
        Circuit.load(path)
    path.write_text("{not json")
    with pytest.raises(CircuitFormatError, match="not JSON"):
        Circuit.load(path)
    with pytest.raises(CircuitFormatError, match="circuit file not found"):
        Circuit.load(tmp_path / "missing.json")
    circuit.save(path)
    _rewrite(path, lambda o: o.update(kind="something-else"))
    with pytest.raises(CircuitFormatError, match="kind: expected 'emotion-circuit'"):
        Circuit.load(path)


def test_validator_follows_the_schema(circuit):
    obj = circuit.to_json()
    assert validate_circuit_json(obj) == []
    assert set(CIRCUIT_JSON_SCHEMA["required"]) == set(obj)
    for key in CIRCUIT_JSON_SCHEMA["required"]:
        if key == "schema_version":
            continue
        broken = {k: v for k, v in obj.items() if k != key}
        assert f"{key}: required field missing" in validate_circuit_json(broken)
    assert validate_circuit_json({"kind": "emotion-circuit"}) == ["schema_version: required field missing"]
    obj["allocation"]["extra"] = 1
    obj["budget"]["total"] = 81
    problems = validate_circuit_json(obj)
    assert "allocation.extra: unknown field" in problems
    assert any(p.startswith("budget.total: 81 but allocation gives 80") for p in problems)


def test_save_refuses_an_invalid_circuit(tmp_path):
    c = _hand_circuit("anger", {0: [1, 40]}, {})
    with pytest.raises(CircuitFormatError, match=r"layers\[0\]\.mlp\.neurons\[1\]: neuron index 40"):
        c.save(tmp_path / "anger.json")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"\.json"):
        _hand_circuit("anger", {}, {}).save(tmp_path / "anger.txt")


def test_save_and_load_circuits(circuit, tmp_path):
    sad = _hand_circuit("sadness", {0: [1, 2]}, {1: [3]})
    paths = save_circuits([circuit, sad], tmp_path / "out")
    assert sorted(p.name for p in paths) == ["anger.json", "sadness.json"]
    assert (tmp_path / "out" / "sadness.safetensors").is_file()
    loaded = load_circuits(tmp_path / "out")
    assert list(loaded) == ["anger", "sadness"]
    assert loaded["anger"] == circuit and loaded["sadness"] == sad
    assert list(load_circuits(tmp_path / "out", emotions=["sadness"])) == ["sadness"]
    with pytest.raises(CircuitFormatError, match="fear"):
        load_circuits(tmp_path / "out", emotions=["fear"])
    with pytest.raises(ModelMismatch):
        load_circuits(tmp_path / "out", model=SimpleNamespace(name="m", fingerprint="00", arch=ARCH))
    with pytest.raises(CircuitFormatError, match="not found"):
        load_circuits(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="two circuits"):
        save_circuits([sad, sad], tmp_path / "dup")


# ------------------------------------------------------------------------------------ graph / overlap


def _eap_graph_names(n_layers: int, n_heads: int) -> tuple[set[str], set[str]]:
    """Reference: node and edge names of EAP-IG's full graph (sequential attention then MLP), written
    from its documented topology: heads read every earlier node through q, k and v; an MLP reads
    every earlier node including its own layer's heads; logits read everything."""
    nodes, edges, stream = {"input", "logits"}, set(), ["input"]
    for layer in range(n_layers):
        hs = [f"a{layer}.h{h}" for h in range(n_heads)]
        nodes |= set(hs) | {f"m{layer}"}
        edges |= {f"{p}->{c}<{x}>" for c in hs for p in stream for x in "qkv"}
        stream += hs
        edges |= {f"{p}->m{layer}" for p in stream}
        stream.append(f"m{layer}")
    edges |= {f"{p}->logits" for p in stream}
    return nodes, edges


def test_graph_export_in_eap_ig_layout(circuit, tmp_path):
    g = circuit.to_graph()
    assert set(g) == {"cfg", "nodes", "edges", "metadata"}
    assert g["cfg"] == {
        "n_layers": ARCH.n_layers,
        "n_heads": ARCH.n_heads,
        "d_model": ARCH.d_model,
        "parallel_attn_mlp": False,
    }
    meta = g["metadata"]
    assert meta["format"] == "eap-graph" and meta["schema_version"] == 2 and meta["emotion"] == "anger"
    assert meta["model"]["fingerprint"] == FP
    all_nodes, all_edges = _eap_graph_names(ARCH.n_layers, ARCH.n_heads)
    assert set(g["nodes"]) == all_nodes  # every node, by EAP-IG's names
    in_graph = {n for n, d in g["nodes"].items() if d["in_graph"]}
    expected = {f"a{lc.layer}.h{h}" for lc in circuit.layers for h in lc.heads} | {
        f"m{lc.layer}" for lc in circuit.layers if lc.neurons
    }
    assert in_graph == expected | {"input", "logits"} and len(expected) == 24 + 4
    m3 = g["nodes"]["m3"]
    assert m3["mlp_neurons"] == circuit.layers[3].neurons and "neurons" not in m3
    assert m3["score"] == pytest.approx(sum(circuit.layers[3].neuron_scores))
    h = circuit.layers[2].heads[0]
    assert g["nodes"][f"a2.h{h}"]["score"] == circuit.layers[2].head_scores[0]
    # edges: exactly EAP-IG's edges whose both ends are in the graph, all in_graph, unscored
    ends = [(e.split("->")[0], e.split("->")[1].split("<")[0]) for e in all_edges]
    want = {e for e, (a, b) in zip(all_edges, ends) if a in in_graph and b in in_graph}
    assert set(g["edges"]) == want
    assert all(v == {"score": 0.0, "in_graph": True} for v in g["edges"].values())
    out = circuit.save_graph(tmp_path / "g" / "anger.graph.json")
    assert json.loads(out.read_text()) == g


def test_graph_edges_of_a_hand_built_circuit():
    """Known answer: heads a0.h2, a0.h5 and MLP m1, nothing else (no MLP in layer 0)."""
    c = _hand_circuit("anger", {1: [4]}, {0: [2, 5]})
    g = c.to_graph()
    assert {n for n, d in g["nodes"].items() if d["in_graph"]} == {"input", "a0.h2", "a0.h5", "m1", "logits"}
    assert set(g["edges"]) == (
        {f"input->a0.h{h}<{x}>" for h in (2, 5) for x in "qkv"}
        | {"input->m1", "a0.h2->m1", "a0.h5->m1"}
        | {"input->logits", "a0.h2->logits", "a0.h5->logits", "m1->logits"}
    )


def test_overlap_jaccard():
    a = _hand_circuit("anger", {0: [1, 2, 5], 1: [3]}, {0: [0]})
    b = _hand_circuit("fear", {0: [2], 1: [3, 4, 5]}, {0: [0], 1: [1]})
    # neurons: A = {(0,1),(0,2),(0,5),(1,3)}, B = {(0,2),(1,3),(1,4),(1,5)} -> 2 / 6
    # heads:   A = {(0,0)}, B = {(0,0),(1,1)} -> 1 / 2
    assert overlap(a, b) == {"neurons": pytest.approx(2 / 6), "heads": 0.5}
    assert overlap(a, a) == {"neurons": 1.0, "heads": 1.0}
    c = _hand_circuit("sadness", {2: [1]}, {3: [7]})
    assert overlap(a, c) == {"neurons": 0.0, "heads": 0.0}


def _resave_sidecar(circuit, path: Path, metadata, tensors=None) -> None:
    from safetensors.torch import save_file

    save_file(dict(tensors or circuit.delta_mu), str(path.with_suffix(".safetensors")), metadata=metadata)


def test_a_sidecar_without_its_identity_is_refused(circuit, tmp_path):
    path = circuit.save(tmp_path / "anger.json")
    fp = circuit.model["fingerprint"]
    _resave_sidecar(circuit, path, None)  # re-saved by hand: no metadata at all
    with pytest.raises(CircuitFormatError) as err:
        Circuit.load(path)
    assert "no 'emotion' in its metadata" in str(err.value) and "no 'fingerprint'" in str(err.value)
    _resave_sidecar(circuit, path, {"fingerprint": fp})
    with pytest.raises(CircuitFormatError, match="anger.safetensors has no 'emotion' in its metadata"):
        Circuit.load(path)
    _resave_sidecar(circuit, path, {"emotion": "anger", "fingerprint": "ffff000011112222"})
    with pytest.raises(CircuitFormatError, match="holds the Delta-mu of fingerprint 'ffff000011112222'"):
        Circuit.load(path)
    _resave_sidecar(circuit, path, {"emotion": "anger", "fingerprint": fp})
    assert Circuit.load(path) == circuit


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_sidecar_with_non_finite_values_or_truncated_is_refused(circuit, tmp_path, bad):
    path = circuit.save(tmp_path / "anger.json")
    meta = {"emotion": "anger", "fingerprint": circuit.model["fingerprint"]}
    tensors = {k: v.clone() for k, v in circuit.delta_mu.items()}
    key = next(iter(tensors))
    tensors[key].view(-1)[0] = bad
    _resave_sidecar(circuit, path, meta, tensors)
    with pytest.raises(CircuitFormatError, match=rf"delta_mu\['{key}'\]: 1 value\(s\) are NaN or infinite"):
        Circuit.load(path)
    sidecar = path.with_suffix(".safetensors")
    sidecar.write_bytes(sidecar.read_bytes()[:-7])
    with pytest.raises(CircuitFormatError, match=r"anger\.safetensors: not a readable safetensors file"):
        Circuit.load(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"emotion": "\\ud800"}', "field 'emotion': holds a lone surrogate"),
        ('{"budget": ' + "9" * 5000 + "}", "an integer has more than 4300 digits"),
        ('{"meta": ' + "[" * 100_000 + "}", "nested too deep"),
        ("", "the circuit file is empty"),
    ],
)
def test_circuit_json_decoding_problems_name_the_file(tmp_path, text, expected):
    path = tmp_path / "anger.json"
    path.write_text(text)
    with pytest.raises(CircuitFormatError) as err:
        Circuit.load(path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value), str(err.value)
    with pytest.raises(CircuitFormatError, match="anger.json"):
        load_circuits(tmp_path)
