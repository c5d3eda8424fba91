"""Permuted-label nulls of the direction evidence: the permutation keeps each group's labels, and on
the toy model the real labels clear the null band that the permuted ones make."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from circuits.core.sev import load_sev
from circuits.discovery.directions import cross_context_cosine, probe_accuracy
from circuits.discovery.label_nulls import direction_nulls, permuted_store
from circuits.discovery.store import StoreConfig, build_store


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    from circuits.core.model import load_model

    model = load_model("toy")
    return build_store(model, load_sev(), tmp_path_factory.mktemp("st"), StoreConfig(limit=4), progress=False)


def test_permutation_keeps_every_group_and_changes_its_labels(toy_store):
    perm, again, other = permuted_store(toy_store, 3), permuted_store(toy_store, 3), permuted_store(toy_store, 4)
    assert [r.emotion for r in perm.rows] == [r.emotion for r in again.rows]  # seeded
    assert [r.emotion for r in perm.rows] != [r.emotion for r in other.rows]
    groups: dict = {}
    for old, new in zip(toy_store.rows, perm.rows):
        assert (old.kind, old.group, old.user) == (new.kind, new.group, new.user)
        if old.kind == "neutral":
            assert new.emotion is None
        else:
            groups.setdefault(old.group, []).append((old.emotion, new.emotion))
    for pairs in groups.values():
        assert Counter(a for a, _ in pairs) == Counter(b for _, b in pairs)  # same labels in the group
        assert any(a != b for a, b in pairs)  # but moved
    assert perm.tensor("mlp_post") is toy_store.tensor("mlp_post")  # a view: nothing copied


def test_real_labels_clear_the_permuted_null_on_the_toy_model(toy_store):
    nulls = direction_nulls(toy_store, seeds=3)
    real_probe = probe_accuracy(toy_store, "mlp")
    real_cos = cross_context_cosine(toy_store, "theme")["mean"].numpy()
    null_probe = np.array(nulls["probe_accuracy"]["mlp"]["mean"])
    null_cos = np.array(nulls["cosine_by_theme"]["mean"])
    assert len(nulls["probe_accuracy"]["mlp"]["seeds"]) == 3 and nulls["chance"] == pytest.approx(1 / 6)
    last = toy_store.n_layers - 1
    # the toy model separates its emotions: the real probe is far above the band of the permuted ones
    assert real_probe[last] > null_probe[last] + 3 * max(nulls["probe_accuracy"]["mlp"]["std"][last], 0.02)
    assert null_probe.max() < 0.5
    # directions from disjoint themes agree with real labels, not with permuted ones
    assert real_cos[1, last] > 0.8 and null_cos[1, last] < real_cos[1, last] - 0.3


def test_batched_nulls_equal_the_per_seed_reference(toy_store):
    """All permutations fitted in one solve on the real probe's rows and folds, by the fast solver, against
    one L-BFGS probe per permuted store (the computation before): the same permutations (the cosine band
    is identical) and every seed's probe accuracy per layer within 0.01 (the solver changed)."""
    from circuits.discovery.directions import probe_data

    data = {"mlp": probe_data(toy_store, "mlp")}
    fast = direction_nulls(toy_store, seeds=3, seed=2, data=data)
    ref = direction_nulls(toy_store, seeds=3, seed=2, batched=False, solver="lbfgs")
    assert fast["cosine_by_theme"] == ref["cosine_by_theme"]
    got, want = np.array(fast["probe_accuracy"]["mlp"]["seeds"]), np.array(ref["probe_accuracy"]["mlp"]["seeds"])
    assert got.shape == (3, toy_store.n_layers)
    np.testing.assert_allclose(got, want, atol=0.01)
    assert np.ptp(want, axis=0).max() > 0  # the seeds differ: the batch is not one permutation thrice
    # the rows and folds gathered once give what the nulls gather themselves
    assert direction_nulls(toy_store, seeds=3, seed=2)["probe_accuracy"] == fast["probe_accuracy"]


def test_nulls_of_an_emotion_subset_fit_each_seed_alone(toy_store):
    """With an emotion subset a permutation moves labels onto rows of other emotions, so each permuted
    store's probe uses other rows: the per-seed fit is used, and equals the unbatched call exactly."""
    from circuits.discovery.directions import probe_data
    from circuits.discovery.label_nulls import _permuted_labels

    subset = ["happiness", "anger", "fear"]
    perms = [permuted_store(toy_store, 7919 * s + 1) for s in range(2)]
    assert _permuted_labels(perms, probe_data(toy_store, "mlp", subset)) is None  # the rows differ
    got = direction_nulls(toy_store, subset, seeds=2)
    assert got == direction_nulls(toy_store, subset, seeds=2, batched=False)
    assert got["chance"] == pytest.approx(1 / 3)
