"""Emotion directions: the centred estimate on a known answer, shapes and the evidence."""

from __future__ import annotations

import torch

from circuits.discovery.directions import centred_directions, cross_context_cosine, pca_by_layer, probe_accuracy


def test_centred_directions_known_answer():
    # 2 groups x 3 emotions in 2-d: group offsets cancel, emotion offsets survive
    emo = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -2.0]])
    groups = torch.tensor([[10.0, 5.0], [-3.0, 7.0]])
    h = groups[:, None] + emo[None]  # [G, E, d]
    unit, diff = centred_directions(h)
    torch.testing.assert_close(diff, emo)
    torch.testing.assert_close(unit, emo / emo.norm(dim=-1, keepdim=True))


def test_directions_shapes_and_evidence(run):
    model, store, dirs = run
    assert dirs.unit.shape == (2, model.arch.n_layers, 6, model.arch.d_model)
    torch.testing.assert_close(dirs.unit.norm(dim=-1), torch.ones(2, model.arch.n_layers, 6))
    cos = cross_context_cosine(store, "valence")
    assert cos["cosine"].shape == (3, 2, model.arch.n_layers, 6) and len(cos["pairs"]) == 3
    assert probe_accuracy(store, "mlp", folds=2).shape == (model.arch.n_layers,)
    pca = pca_by_layer(store)
    assert pca["coords"].shape[:2] == (model.arch.n_layers, dirs.n_groups * 6)


def test_masked_directions_equal_a_loop_reference():
    """With a mask of accepted rows the centre is the mean of all rows of a group and c_e the mean over
    the groups where e is accepted (checked against explicit loops); an all-true mask is the plain formula."""
    from circuits.discovery.directions import masked_centred_mean

    g = torch.Generator().manual_seed(0)
    h = torch.randn(5, 3, 4, generator=g)
    mask = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1], [0, 0, 1]], dtype=torch.bool)
    got = masked_centred_mean(h, mask)
    for e in range(3):
        devs = [h[k, e] - h[k].mean(0) for k in range(5) if mask[k, e]]
        torch.testing.assert_close(got[e], torch.stack(devs).mean(0))
    full = torch.ones(5, 3, dtype=torch.bool)
    torch.testing.assert_close(masked_centred_mean(h, full), (h - h.mean(1, keepdim=True)).mean(0))
    u_full, d_full = centred_directions(h, full)
    u_plain, d_plain = centred_directions(h)
    torch.testing.assert_close(d_full, d_plain)
    assert not torch.allclose(centred_directions(h, mask)[1], d_plain)  # the mask matters


def test_batched_logistic_probe_equals_sklearn():
    """The all-layers-at-once probe against sklearn's StandardScaler + LogisticRegression, layer by layer."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from circuits.discovery.directions import logistic_probe_cv

    g = torch.Generator().manual_seed(0)
    n, L, d, E = 180, 3, 12, 4
    y = torch.arange(n) % E
    means = torch.randn(L, E, d, generator=g) * torch.tensor([0.0, 0.4, 2.0])[:, None, None]  # chance, hard, easy
    x = torch.randn(n, L, d, generator=g) * 1.5 + means[:, y].transpose(0, 1)
    groups = np.arange(n) // 6
    splits = list(GroupKFold(3).split(np.zeros(n), y.numpy(), groups))
    ours = logistic_probe_cv(x, y, splits, n_classes=E, C=0.1, max_iter=500).numpy()
    ref = []
    for layer in range(L):
        accs = []
        for tr, te in splits:
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, tol=1e-8))
            clf.fit(x[tr, layer].numpy(), y[tr].numpy())
            accs.append((clf.predict(x[te, layer].numpy()) == y[te].numpy()).mean())
        ref.append(np.mean(accs))
    np.testing.assert_allclose(ours, ref, atol=1.5 / n * 3)  # at most ~1 test item per fold differs
    assert ours[2] > 0.95 and ours[0] < 0.45  # the easy layer separates, the label-free one is near chance
