"""Circuit faithfulness on the toy model: hand-built circuits whose answer is known, a slow reference
written with raw hooks, random circuits of the same size, the judged conditions, and the circuit file."""

from __future__ import annotations

import math

import pytest
import torch

from circuits.circuit import Circuit, LayerCircuit
from circuits.circuit import ablation_faithfulness as fa
from circuits.circuit.allocation import AllocationConfig
from circuits.core.hooks import run_forward
from circuits.core.sev import load_sev
from circuits.discovery import components, influence
from circuits.discovery.directions import emotion_directions
from circuits.discovery.store import StoreConfig, build_store


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    from circuits.core.model import load_model

    model = load_model("toy")
    store = build_store(model, load_sev(), tmp_path_factory.mktemp("st"), StoreConfig(limit=4), progress=False)
    return model, store, emotion_directions(store)


def hand_circuit(model, emotion: str, neurons: dict[int, list[int]], heads: dict[int, list[int]]) -> Circuit:
    a = model.arch
    layers, dmu = [], {}
    for L in range(a.n_layers):
        n, h = sorted(neurons.get(L, [])), sorted(heads.get(L, []))
        layers.append(LayerCircuit(L, n, [1.0] * len(n), h, [1.0] * len(h)))
        dmu[f"mlp.{L}"] = torch.zeros(len(n))
        dmu[f"attn.{L}"] = torch.zeros(len(h), a.d_head)
    return Circuit(
        emotion=emotion,
        model={"name": model.name, "fingerprint": model.fingerprint, "arch": a.to_dict()},
        allocation=AllocationConfig(),
        layers=layers,
        influence={"attn": [0.0] * a.n_layers, "mlp": [0.0] * a.n_layers},
        delta_mu=dmu,
        meta={},
    )


def test_the_whole_model_is_fully_faithful_and_the_empty_circuit_not_at_all(toy_store):
    """Known answers: a circuit of every unit keeps the full score (faithfulness 1) and ablating it
    removes everything (loss 1); the empty circuit does nothing either way (0, 0)."""
    model, store, dirs = toy_store
    a = model.arch
    everything = hand_circuit(
        model,
        "anger",
        {L: list(range(a.d_mlp)) for L in range(a.n_layers)},
        {L: list(range(a.n_heads)) for L in range(a.n_layers)},
    )
    nothing = hand_circuit(model, "fear", {}, {})
    cfg = fa.FaithfulnessConfig(rows=6, seeds=2)
    res = fa.circuit_faithfulness(model, store, dirs, [everything, nothing], cfg, progress=False)
    full, empty = res["anger"], res["fear"]
    assert full["scores"]["full"] != full["scores"]["empty"]
    assert full["faithfulness"] == pytest.approx(1.0, abs=1e-6) and full["ablation_loss"] == pytest.approx(
        1.0, abs=1e-6
    )
    assert empty["faithfulness"] == pytest.approx(0.0, abs=1e-6) and empty["ablation_loss"] == pytest.approx(
        0.0, abs=1e-6
    )
    # random circuits of the same size per layer are the same circuits here: all units, or none
    assert full["random"]["faithfulness"]["seeds"] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert empty["random"]["ablation_loss"]["seeds"] == pytest.approx([0.0, 0.0], abs=1e-6)


def _heldout_prompts(model, store, emotion: str, rows: int) -> list[list[int]]:
    """The first ``rows`` test-split items of ``emotion`` as chats in the store's prompt settings."""
    from circuits.core.sev import DEFAULT_TEST

    items = load_sev(DEFAULT_TEST).items([emotion])[:rows]
    return [model.chat_ids(*store.settings.chat(emotion, it.user_text)) for it in items]


def _reference_scores(model, store, dirs, circuit, prompts) -> dict[str, float]:
    """Slow reference: full forward passes (no KV cache), mean ablation written as raw TransformerLens
    hooks on hook_post / hook_z at the last position (prompts are left-padded)."""
    a = model.arch
    e = dirs.emotions.index(circuit.emotion)
    v = influence.reference_directions(dirs)[e]
    emo = store.index("emotion")
    mean_post = store.tensor("mlp_post")[emo].mean(0)  # [L, d_mlp]
    mean_z = store.tensor("z")[emo].mean(0)  # [L, H, d_head]
    ids, mask = model.pad_left(prompts)
    inside_n, inside_h = circuit.neuron_index(), circuit.head_index()

    def hooks(ablate_inside: bool, ablate_outside: bool) -> list:
        out = []
        for L in range(a.n_layers):
            neurons = [
                n
                for n in range(a.d_mlp)
                if (n in inside_n[L] and ablate_inside) or (n not in inside_n[L] and ablate_outside)
            ]
            heads = [
                h
                for h in range(a.n_heads)
                if (h in inside_h[L] and ablate_inside) or (h not in inside_h[L] and ablate_outside)
            ]

            def post(x, hook, L=L, idx=neurons):
                x = x.clone()
                x[:, -1, idx] = mean_post[L, idx].to(x.dtype)
                return x

            def z(x, hook, L=L, idx=heads):
                x = x.clone()
                x[:, -1, idx] = mean_z[L, idx].to(x.dtype)
                return x

            out += [(f"blocks.{L}.mlp.hook_post", post), (f"blocks.{L}.attn.hook_z", z)]
        return out

    plan = {"full": (False, False), "empty": (True, True), "circuit": (False, True), "ablated": (True, False)}
    res = {}
    for name, (inside, outside) in plan.items():
        got = run_forward(
            model, ids, mask, [], influence.FINAL_STATE, extra_hooks=hooks(inside, outside), logits_to_keep=0
        )
        res[name] = float((influence.final_state(got) @ v).mean())
    return res


@pytest.mark.parametrize("split", ["train", "test"])
def test_condition_scores_equal_a_full_forward_reference(toy_store, split):
    """In-sample (the store's own rows) and held-out (test-split items): the four condition scores equal
    full forward passes with raw hooks over the same prompts, the means always from the store."""
    model, store, dirs = toy_store
    circuit = hand_circuit(model, "sadness", {0: [3, 17, 200], 2: [5], 3: list(range(0, 384, 7))}, {1: [0, 6], 3: [2]})
    got = fa.circuit_faithfulness(
        model, store, dirs, [circuit], fa.FaithfulnessConfig(rows=5, seeds=1, split=split), progress=False
    )["sadness"]
    prompts = (
        store.prompts(model, store.index("emotion", "sadness")[:5])
        if split == "train"
        else _heldout_prompts(model, store, "sadness", 5)
    )
    want = _reference_scores(model, store, dirs, circuit, prompts)
    for name in fa.CONDITIONS:
        assert got["scores"][name] == pytest.approx(want[name], rel=1e-4, abs=1e-4), name
    span = want["full"] - want["empty"]
    assert got["faithfulness"] == pytest.approx((want["circuit"] - want["empty"]) / span, rel=1e-3, abs=1e-4)
    assert got["ablation_loss"] == pytest.approx((want["full"] - want["ablated"]) / span, rel=1e-3, abs=1e-4)
    assert got["items"]["split"] == split and got["rows"] == 5
    assert fa.faithfulness_summary({"sadness": got})["sadness"]["split"] == split


def test_held_out_items_are_not_the_store_rows(toy_store):
    """The two splits score different prompts, so their full-condition scores differ; a bad split is
    refused naming the field and its flag."""
    from circuits.core.config import ConfigError

    model, store, dirs = toy_store
    circuit = hand_circuit(model, "fear", {1: [2, 4]}, {0: [1]})
    res = {
        s: fa.circuit_faithfulness(
            model, store, dirs, [circuit], fa.FaithfulnessConfig(rows=6, seeds=1, split=s), progress=False
        )["fear"]
        for s in fa.SPLITS
    }
    assert res["test"]["scores"]["full"] != pytest.approx(res["train"]["scores"]["full"], abs=1e-6)
    assert res["test"]["items"]["sha256"] != res["train"]["items"]["sha256"]
    with pytest.raises(ConfigError, match=r"FaithfulnessConfig.split \(--split\)"):
        fa.FaithfulnessConfig(split="dev")


def test_random_circuits_keep_the_size_of_every_layer_and_follow_the_seed(toy_store):
    model, _, _ = toy_store
    circuit = hand_circuit(model, "anger", {0: [1, 2, 3], 3: [9]}, {2: [4, 5]})
    r0, r0b, r1 = fa.random_units(circuit, 0), fa.random_units(circuit, 0), fa.random_units(circuit, 1)
    assert r0 == r0b and r0 != r1
    for L in range(model.arch.n_layers):
        assert len(r0["neurons"][L]) == len(circuit.neuron_index()[L])
        assert len(r0["heads"][L]) == len(circuit.head_index()[L])


def test_the_top_units_are_more_faithful_than_random_units_on_the_toy_model(toy_store):
    """The toy model says its emotion through a few units: a circuit of the top-scored units carries
    more of the emotion score than random circuits of the same size, and losing it costs more."""
    from circuits.circuit import assemble_circuit
    from circuits.discovery import ablation

    model, store, dirs = toy_store
    neurons = components.neuron_contributions(model, store, dirs)
    heads = components.head_scores_one_pass(model, store, dirs)
    infl = influence.normalise(influence.influence_gradient(model, store, dirs, progress=False))
    dmu_n, dmu_z = ablation.delta_mu(store, "mlp_post", dirs.emotions), ablation.delta_mu(store, "z", dirs.emotions)
    circuits = [
        assemble_circuit(
            e,
            influence_attn=infl[:, 0, i],
            influence_mlp=infl[:, 1, i],
            neuron_scores=neurons[:, i],
            head_scores=heads[:, i],
            delta_mu_mlp=dmu_n[i],
            delta_mu_heads=dmu_z[i],
            model_info={"name": model.name, "fingerprint": model.fingerprint, "arch": model.arch},
        )
        for i, e in enumerate(dirs.emotions)
    ]
    res = fa.circuit_faithfulness(model, store, dirs, circuits, fa.FaithfulnessConfig(rows=12, seeds=3), progress=False)
    f = [b["faithfulness"] for b in res.values()]
    fr = [b["random"]["faithfulness"]["mean"] for b in res.values()]
    loss = [b["ablation_loss"] for b in res.values()]
    lr = [b["random"]["ablation_loss"]["mean"] for b in res.values()]
    assert sum(f) / len(f) > sum(fr) / len(fr)
    assert sum(loss) / len(loss) > sum(lr) / len(lr)
    # the block is what the circuit file stores
    circuits[0].faithfulness = res[circuits[0].emotion]
    from circuits.circuit.schema import validate_circuit_json

    assert validate_circuit_json(circuits[0].to_json()) == []


def test_judged_conditions_match_plain_generation(toy_store):
    """The judged 'full' condition is generation with no edit: its accuracy equals judging plain
    generations of the same prompts; ablating every unit changes the replies."""
    from circuits.core.generate import GenerationSettings, generate
    from circuits.judges.base import judge_replies, make_judge

    model, store, dirs = toy_store
    circuit = hand_circuit(model, "happiness", {3: list(range(40))}, {3: [0, 1]})
    judge = make_judge("lexicon")  # the toy model's notion of emotion
    cfg = fa.FaithfulnessConfig(rows=4, seeds=1, judge_rows=3, max_new_tokens=12)
    block = fa.circuit_faithfulness(model, store, dirs, [circuit], cfg, judge=judge, progress=False)["happiness"]
    judged = block["judged"]
    assert judged["rows"] == 3 and set(judged["accuracy"]) == set(fa.CONDITIONS)
    assert {"random_circuit", "random_ablated"} <= set(judged)
    prompts = _heldout_prompts(model, store, "happiness", 3)  # the default: held-out items
    plain = generate(model, prompts, GenerationSettings(max_new_tokens=12), progress=False)
    hits = judge_replies(
        judge, plain, ["happiness"] * 3, instructions=[store.settings.instructions("happiness")] * 3
    ).hits  # fluent hits: broken replies are misses
    assert judged["accuracy"]["full"] == pytest.approx(sum(hits) / 3)
    assert set(block["judged"]["broken_share"]) >= set(fa.CONDITIONS)
    assert all(math.isfinite(x) for x in judged["accuracy"].values())
