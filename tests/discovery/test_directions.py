"""Emotion directions: the centred estimate on a known answer, shapes and the evidence."""

from __future__ import annotations

import pytest
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


def _separable(n: int, d: int, scales: list[float], E: int = 6, seed: int = 0):
    """Synthetic residuals ``[n, len(scales), d]`` with known separability: layer l's class means are
    ``scales[l]`` apart in scale (0: labels carry nothing), on correlated, unevenly scaled features."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % E
    means = torch.randn(len(scales), E, d, generator=g) * torch.tensor(scales)[:, None, None]
    mix = torch.randn(d, d, generator=g) / d**0.5 + torch.eye(d)
    x = (torch.randn(n, len(scales), d, generator=g) + means[:, y].transpose(0, 1)) @ mix
    return x * torch.logspace(-2, 1, d), y


def test_pca_probe_equals_the_lbfgs_reference_on_known_separability():
    """The preconditioned principal-axes fit against plain L-BFGS (the reference), per layer within 0.01,
    with fewer rows than features (the basis is the rows' span) and more rows than features; chance
    layers stay at chance and separable layers separate."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    from circuits.discovery.directions import logistic_probe_cv

    for n, d in [(120, 200), (600, 48)]:
        x, y = _separable(n, d, [0.0, 0.15, 0.4, 2.0])
        splits = list(GroupKFold(5).split(np.zeros(n), None, np.arange(n) // 6))
        ref = logistic_probe_cv(x, y, splits, n_classes=6, solver="lbfgs", max_iter=500).numpy()
        fast = logistic_probe_cv(x, y, splits, n_classes=6, solver="pca").numpy()
        np.testing.assert_allclose(fast, ref, atol=0.01)
        assert fast[0] < 0.3 and fast[3] > 0.95 and fast[1] < fast[2] < fast[3]


def test_batched_labels_equal_one_fit_per_label_set():
    """``y`` of shape ``[S, n]``: S label sets on the same rows fitted in one solve give each set's own
    accuracies (within 0.01; the shared line search is the only difference)."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    from circuits.discovery.directions import logistic_probe_cv

    x, y = _separable(240, 32, [0.0, 0.5, 2.0])
    g = torch.Generator().manual_seed(1)
    ys = torch.stack([y, y[torch.randperm(240, generator=g)], y.roll(1)])
    splits = list(GroupKFold(4).split(np.zeros(240), None, np.arange(240) // 6))
    both = logistic_probe_cv(x, ys, splits, n_classes=6).numpy()
    assert both.shape == (3, 3)
    for s in range(3):
        np.testing.assert_allclose(both[s], logistic_probe_cv(x, ys[s], splits, n_classes=6).numpy(), atol=0.01)
    with pytest.raises(ValueError, match="solver"):
        logistic_probe_cv(x, y, splits, n_classes=6, solver="newton")


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    from circuits.core.model import load_model
    from circuits.core.sev import load_sev
    from circuits.discovery.store import StoreConfig, build_store

    model = load_model("toy")
    return build_store(model, load_sev(), tmp_path_factory.mktemp("st"), StoreConfig(limit=8), progress=False)


def test_pca_probe_equals_the_lbfgs_reference_on_the_toy_store(toy_store):
    """On the toy model's store, both read points: the fast probe's accuracy per layer is the
    reference's within 0.01, and the rows and folds gathered once give the same numbers."""
    import numpy as np

    from circuits.discovery.directions import probe_data

    for point in ("attn", "mlp"):
        ref = probe_accuracy(toy_store, point, solver="lbfgs")
        fast = probe_accuracy(toy_store, point)
        np.testing.assert_allclose(fast, ref, atol=0.01)
        np.testing.assert_array_equal(probe_accuracy(toy_store, point, data=probe_data(toy_store, point)), fast)
    assert fast[-1] > 0.8  # the toy model separates its emotions: not a comparison of two chance curves
