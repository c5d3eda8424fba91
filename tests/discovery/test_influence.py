"""Sublayer influence: the one-pass gradient estimate agrees with the intervention measure."""

from __future__ import annotations

import torch
from scipy.stats import spearmanr

from circuits.discovery import influence


def test_influence_gradient_agrees_with_intervention(run):
    model, store, dirs = run
    ref = influence.influence_intervention(model, store, dirs, progress=False)
    grad = influence.influence_gradient(model, store, dirs, progress=False)
    assert spearmanr(ref.flatten(), grad.flatten())[0] >= 0.9
    norm = influence.normalise(ref)
    torch.testing.assert_close(norm.sum(dim=(0, 1)), torch.ones(6))


def _full_forward_reference(model, store, dirs, rows, layer, point):
    """Slow reference: the gradient of s at the last token of full forward passes (no prefix cache),
    and the intervention measure at alpha=1 from full forward passes, for one sublayer."""
    from circuits.core.hooks import Intervention, run_forward
    from circuits.discovery.influence import FINAL_STATE, final_state, reference_directions, residual_sigma

    v_ref = reference_directions(dirs)
    p = influence.READ_POINTS.index(point)
    ids, mask = model.pad_left(store.prompts(model, rows, neutral=True))
    delta = torch.zeros(ids.shape[0], model.arch.d_model, requires_grad=True)

    def add(x, hook):
        pad = torch.zeros_like(x)
        pad[:, -1] = delta
        return x + pad

    hook = model.hooks.attn_out(layer) if point == "attn" else model.hooks.mlp_out(layer)
    reads = [type(r)(r.site, keep_graph=True) for r in FINAL_STATE]
    got = run_forward(model, ids, mask, reads=reads, extra_hooks=[(hook, add)], grad=True)
    s = (got[reads[0]] / got[reads[1]]) @ v_ref.T
    grad = torch.stack(
        [
            torch.autograd.grad(s[:, e].sum(), delta, retain_graph=True)[0] @ dirs.unit[p, layer, e]
            for e in range(len(dirs.emotions))
        ]
    )  # [E, rows]
    sigma = float(residual_sigma(store)[layer, p])
    base = final_state(run_forward(model, ids, mask, reads=FINAL_STATE)) @ v_ref.T
    moved = torch.stack(
        [
            (
                final_state(
                    run_forward(
                        model,
                        ids,
                        mask,
                        [
                            Intervention(
                                f"{point}_out",
                                layer,
                                "add",
                                vector=dirs.unit[p, layer, e],
                                factor=sigma,
                                positions="last",
                            )
                        ],
                        FINAL_STATE,
                    )
                )
                @ v_ref.T
            )[:, e]
            for e in range(len(dirs.emotions))
        ]
    )
    return grad.sum(1) / len(rows), (moved - base.T).sum(1) / sigma / len(rows)


def test_last_token_passes_equal_full_forward_passes(run):
    """Both measures run on cached prefixes; a full forward pass per row gives the same numbers."""
    model, store, dirs = run
    rows = store.index("neutral")[:5]
    for layer, point in [(0, "attn"), (model.arch.n_layers - 1, "mlp")]:
        p = influence.READ_POINTS.index(point)
        want_grad, want_int = _full_forward_reference(model, store, dirs, rows, layer, point)
        got_grad = influence.influence_gradient(model, store, dirs, rows=rows, batch_size=2, progress=False)
        got_int = influence.influence_intervention(
            model, store, dirs, rows=rows, alphas=(1.0,), layers=[layer], batch_size=2, progress=False
        )
        torch.testing.assert_close(got_grad[layer, p], want_grad.float(), atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(got_int[layer, p], want_int.float(), atol=1e-4, rtol=1e-3)
        assert got_grad[layer, p].abs().max() > 1e-4  # not two zeros


def test_per_row_gradient_gives_the_estimate_on_every_subset(run):
    """One per-row pass over every neutral row: its mean is the estimate on all rows and the mean over a
    subset is the estimate on that subset, as the two separate calls give (other batches: float rounding),
    and discover takes the agreement's subset from it (``_gradient_on``)."""
    from circuits.runs.discover import _gradient_on

    model, store, dirs = run
    neutral = store.index("neutral")
    per_row = influence.influence_gradient(model, store, dirs, per_row=True, batch_size=3, progress=False)
    assert per_row.shape == (len(neutral), model.arch.n_layers, 2, 6)
    whole = influence.influence_gradient(model, store, dirs, progress=False)
    torch.testing.assert_close(per_row.mean(0), whole, rtol=1e-5, atol=1e-6)
    sub = neutral[torch.randperm(len(neutral), generator=torch.Generator().manual_seed(0))[:5]].sort().values
    alone = influence.influence_gradient(model, store, dirs, rows=sub, batch_size=2, progress=False)
    torch.testing.assert_close(_gradient_on(model, store, dirs, sub, per_row), alone, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(alone, whole, rtol=1e-3, atol=1e-5)  # the subset is not the whole
    torch.testing.assert_close(_gradient_on(model, store, dirs, sub, None), alone)  # no per-row values: a pass
