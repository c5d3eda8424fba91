"""Known answers of the validity statistics (:mod:`circuits.discovery.cross_elicitation`) on planted features: a
direction shared by explicit and implicit prompts passes the transfer tests, a purely lexical one (the
explicit prompts' emotion in a direction the implicit prompts never use, or no emotion in them at all)
fails them; plus the small pieces checked by hand."""

from __future__ import annotations

import pytest
import torch

from circuits.discovery.cross_elicitation import (
    IMPLICIT,
    SetFeatures,
    band_verdicts,
    class_directions,
    layer_bands,
    plane_share,
    transfer_accuracy,
    validity_stats,
)

E, L, D = 6, 3, 24


def _planted(name, side, dirs, per_class, seed, strength=5.0):
    """Rows of one set: noise, a set-wide offset (its format), and ``strength * dirs[layer, label]``
    (``dirs`` None: no emotion in the rows)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(E).repeat_interleave(per_class)
    x = torch.randn(len(y), L, D, generator=g) + 5 * torch.randn(1, L, D, generator=g)
    if dirs is not None:
        x = x + strength * dirs[:, y].transpose(0, 1)
    tokens = torch.randn(len(y), D, generator=g)  # token identities that carry no emotion
    groups = [f"{name}-{i % 8}" for i in range(len(y))]
    return SetFeatures(name, side, x, tokens, y, groups)


def _sets(explicit_dirs, implicit_dirs):
    sets = {}
    for k, side in enumerate(("dev", "final")):
        sets[("explicit", side)] = _planted("explicit", side, explicit_dirs, 16, 10 + k)
        for j, s in enumerate(IMPLICIT):
            sets[(s, side)] = _planted(s, side, implicit_dirs, 10, 20 + 2 * j + k)
    return sets


def _dirs(seed):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(L, E, D, generator=g)
    return v / v.norm(dim=-1, keepdim=True)


@pytest.fixture(scope="module")
def shared():
    w = _dirs(1)
    return validity_stats(_sets(w, w), [f"e{i}" for i in range(E)], seeds=12, max_iter=60)


def test_a_planted_shared_direction_passes_every_transfer_test(shared):
    for s in IMPLICIT:
        assert min(shared["forward"][s]["value"]) > 0.8
        assert min(shared["reverse"][s]["value"]) > 0.8
        assert min(shared["cosine"][s]["value"]) > 0.7
        assert max(shared["forward"][s]["null_p95"]) < 0.5
        per = torch.tensor(shared["cosine"][s]["per_emotion"])  # [L, E], its mean is the reported cosine
        assert per.shape == (L, E) and torch.allclose(per.mean(1), torch.tensor(shared["cosine"][s]["value"]))
    rows = band_verdicts(shared, bands=3)
    assert [r["layers"] for r in rows] == [[0, 0], [1, 1], [2, 2]]
    assert {r["verdict"] for r in rows} == {"emotion state"}
    assert all(sorted(r["supporting"]) == sorted(IMPLICIT) for r in rows)


@pytest.mark.parametrize("implicit", ["none", "elsewhere"])
def test_a_purely_lexical_direction_fails_the_transfer_tests(implicit):
    """The explicit prompts carry the emotion along one set of directions; the implicit prompts carry
    none (``none``: the toy model's case) or carry it along unrelated directions (``elsewhere``)."""
    u = _dirs(2)
    stats = validity_stats(
        _sets(u, None if implicit == "none" else _dirs(3)), [f"e{i}" for i in range(E)], seeds=12, max_iter=60
    )
    assert min(stats["within"]["value"]) > 0.9  # the explicit prompts' emotion is read
    rows = band_verdicts(stats, bands=3)
    assert {r["verdict"] for r in rows} == {"instruction word"}
    for s in IMPLICIT:
        assert max(stats["forward"][s]["value"]) < 0.45  # chance is 1/6


def test_nothing_read_at_all_cannot_be_told():
    stats = validity_stats(_sets(None, None), [f"e{i}" for i in range(E)], seeds=12, max_iter=60)
    assert {r["verdict"] for r in band_verdicts(stats, bands=3)} == {"cannot tell"}


def test_transfer_accuracy_matches_a_direct_fit_and_nulls_are_the_permuted_fits():
    """The batched transfer (real labels first, permutations after) equals fitting each label set alone,
    and the first row equals the unbatched call."""
    sets = _sets(_dirs(4), _dirs(4))
    tr, te = sets[("explicit", "dev")], sets[("event", "final")]
    g = torch.Generator().manual_seed(0)
    ys = torch.stack([tr.y, tr.y[torch.randperm(len(tr.y), generator=g)]])
    batched = transfer_accuracy(tr.x, ys, te.x, te.y, E, max_iter=60)
    for k in range(2):
        alone = transfer_accuracy(tr.x, ys[k], te.x, te.y, E, max_iter=60)
        assert torch.allclose(batched[k], alone, atol=0.02)


def test_class_directions_and_plane_share_by_hand():
    x = torch.zeros(4, 1, 3)
    x[0, 0], x[1, 0], x[2, 0], x[3, 0] = torch.tensor([2.0, 0, 0]), torch.tensor([4.0, 0, 0]), 0, 0
    y = torch.tensor([0, 0, 1, 1])
    u = class_directions(x, y, 2)  # means (3,0,0) and 0: minus their mean (1.5,0,0) -> +-x
    assert torch.allclose(u[0], torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]))
    words = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]], [[0, 0, 1.0], [0, 1.0, 0]]])  # planes xy and zy
    units = torch.tensor([[[0.6, 0.8, 0.0], [0.6, 0.0, 0.8]]])
    matched, mismatched = plane_share(units, words)
    assert torch.allclose(matched, torch.tensor([[1.0, 0.64]]))
    assert torch.allclose(mismatched, torch.tensor([[0.64, 0.36]]))


def test_layer_bands_cover_every_layer_once():
    for n in (1, 2, 4, 7, 30):
        for b in (1, 3, 4):
            bands = layer_bands(n, b)
            covered = [L for lo, hi in bands for L in range(lo, hi + 1)]
            assert covered == list(range(n)) and len(bands) == min(b, n)
    assert layer_bands(30, 3) == [(0, 9), (10, 19), (20, 29)]
