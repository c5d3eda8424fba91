"""Figures of a discovery run: PCA by layer, cross-context cosines, probe accuracy, long tails, ablation, influence, circuits, logit lens, methods."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from circuits.figures.render import save_figure


def add_band(
    fig,
    x,
    lo,
    hi,
    name: str,
    *,
    color: str | None = None,
    legendgroup: str | None = None,
    showlegend: bool = True,
    **where,
) -> None:
    """A filled band between ``lo`` and ``hi`` over ``x`` (the spread of a null over its seeds); ``color``
    fills it (default: plotly's next colour), ``legendgroup`` / ``showlegend`` keep one legend entry for a
    band drawn in several panels."""
    import plotly.graph_objects as go

    xs = list(x) + list(x)[::-1]
    ys = list(map(float, hi)) + list(map(float, lo))[::-1]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            fill="toself",
            mode="lines",
            line=dict(width=0, color=color),
            fillcolor=color,
            opacity=0.25,
            name=name,
            hoverinfo="skip",
            legendgroup=legendgroup,
            showlegend=showlegend,
        ),
        **where,
    )


def cross_context_cosines(store: Any, emotions: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-emotion cross-context cosines from an activation store: ``{"theme": [2, n_layers,
    n_emotions] (directions from the two disjoint theme halves), "valence": [...] (directions from
    each valence, mean over the valence pairs)}``; a comparison the store cannot make (one theme or
    one valence) is left out."""
    from circuits.discovery.directions import cross_context_cosine

    out = {}
    for by in ("theme", "valence"):
        try:
            out[by] = cross_context_cosine(store, by, emotions)["cosine"].mean(0).numpy()
        except (ValueError, RuntimeError):
            continue
    return out


def cosine_heatmap(
    emotions: Sequence[str], evidence: dict, cosine: dict[str, Any] | None, n_layers: int
) -> tuple[Any, int]:
    """The cross-context cosine heatmap: one panel per comparison (disjoint theme halves, valence
    pairs); columns are the read points by layer (``a3`` after layer 3's attention, ``m3`` after its
    MLP), rows the emotions and their mean. The colour scale is fixed to [-1, 1] (0 = orthogonal) and
    every cell carries its value, so cosines near 1 read as such. Returns ``(figure, height in px)``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    xs = [f"{'a' if p == 0 else 'm'}{l}" for l in range(n_layers) for p in range(2)]
    panels = []
    for key, label in (
        ("theme", "directions from disjoint theme halves"),
        ("valence", "directions from different valences (mean over pairs)"),
    ):
        if cosine is not None and key in cosine:
            c = np.asarray(cosine[key], dtype=float)  # [read point, layer, emotion]
            z = np.stack([c[:, :, i].T.reshape(-1) for i in range(len(emotions))] + [c.mean(2).T.reshape(-1)])
            ys = [*emotions, "mean"]
        elif f"cosine_by_{key}" in evidence:
            z = np.asarray(evidence[f"cosine_by_{key}"], dtype=float).T.reshape(1, -1)
            ys = ["mean"]
        else:
            continue
        panels.append((f"{label}: min {np.nanmin(z):.4f}, mean {np.nanmean(z):.4f}", z, ys))
    n_rows = max(len(p[2]) for p in panels) if panels else 1
    fig = make_subplots(
        rows=max(len(panels), 1),
        cols=1,
        subplot_titles=[p[0] for p in panels],
        vertical_spacing=0.18 if len(panels) > 1 else 0.1,
    )
    decimals = 4 if len(xs) <= 16 else 3 if len(xs) <= 24 else 2
    for r, (_, z, ys) in enumerate(panels):
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=xs,
                y=ys,
                zmin=-1,
                zmax=1,
                zmid=0,
                colorscale="RdBu_r",
                text=[[f"{v:.{decimals}f}" for v in row] for row in z],
                texttemplate="%{text}",
                textfont=dict(size=10 if len(xs) <= 24 else 7),
                showscale=r == 0,
                colorbar=dict(title="cosine"),
                xgap=1,
                ygap=1,
                hovertemplate="%{y} %{x}: %{z:.5f}<extra></extra>",
            ),
            row=r + 1,
            col=1,
        )
        fig.update_yaxes(autorange="reversed", row=r + 1, col=1)
    fig.update_xaxes(title="read point (a = after attention, m = after MLP; by layer)", row=len(panels) or 1, col=1)
    fig.update_layout(title="Cross-context cosine of the emotion directions (1 = same direction in both contexts)")
    return fig, 160 + 26 * n_rows * max(len(panels), 1) + 60 * max(len(panels), 1)


def discovery_figures(
    run_dir: str | Path,
    *,
    emotions: Sequence[str],
    pca: dict,
    evidence: dict,
    neurons: torch.Tensor,
    heads: torch.Tensor,
    sweeps: list[dict],
    influence: torch.Tensor,
    circuits: list,
    logit_lens: torch.Tensor,
    cosine: dict[str, Any] | None = None,
) -> list[str]:
    """Write the discovery figures into ``run_dir/figures`` and return their paths.

    ``cosine`` (optional): ``{"theme": [2, n_layers, n_emotions], "valence": [...]}`` per-emotion
    cross-context cosines (see :func:`cross_context_cosines`); without it the heatmap shows only the
    means stored in ``evidence``."""
    import plotly.express as px
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    out = Path(run_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    L = neurons.shape[0]

    # PCA of group-centred residuals by layer
    show = sorted({0, L // 3, (2 * L) // 3, L - 1})
    fig = make_subplots(rows=1, cols=len(show), subplot_titles=[f"layer {l}" for l in show])
    colors = px.colors.qualitative.Plotly
    labels = np.array(pca["labels"])
    for c, layer in enumerate(show):
        for i, e in enumerate(emotions):
            pts = pca["coords"][layer][labels == e]
            fig.add_trace(
                go.Scatter(
                    x=pts[:, 0],
                    y=pts[:, 1],
                    mode="markers",
                    name=e,
                    legendgroup=e,
                    showlegend=c == 0,
                    marker=dict(size=4, color=colors[i % len(colors)]),
                ),
                row=1,
                col=c + 1,
            )
    fig.update_layout(title="Emotion directions: PCA of group-centred last-token residuals (resid_post)")
    paths += save_figure(fig, out, "pca_by_layer")

    # Cross-context cosine (heatmap) and probe accuracy
    fig, height = cosine_heatmap(emotions, evidence, cosine, L)
    paths += save_figure(fig, out, "cross_context_cosine", height=height)
    fig = go.Figure()
    for point, acc in evidence["probe_accuracy"].items():
        fig.add_trace(go.Scatter(x=list(range(len(acc))), y=acc, mode="lines+markers", name=f"probe ({point})"))
    fig.add_trace(
        go.Scatter(
            x=[0, L - 1], y=[1 / len(emotions)] * 2, mode="lines", name="chance", line=dict(dash="dot", color="grey")
        )
    )
    for point, band in ((evidence.get("null") or {}).get("probe_accuracy") or {}).items():
        seeds = np.array(band["seeds"])  # [n_seeds, L]: permuted-label probes, drawn as their min-max band
        add_band(
            fig,
            list(range(seeds.shape[1])),
            seeds.min(0),
            seeds.max(0),
            f"permuted labels ({point}, {len(seeds)} seeds)",
        )
    fig.update_layout(
        title="Emotion probe accuracy by layer (cross-validated, folds grouped by scenario)",
        xaxis_title="layer",
        yaxis_title="accuracy",
        yaxis_range=[0, 1.05],
    )
    paths += save_figure(fig, out, "probe_accuracy")

    # Long-tail curves (top vs random), zero ablation and add, summed over layers of the mid network
    fig = make_subplots(rows=1, cols=2, subplot_titles=["neurons", "heads"])
    for c, kind in enumerate(("neurons", "heads")):
        for mode in sorted({r["mode"] for r in sweeps}):
            for sel, dash in (("top", "solid"), ("random", "dot")):
                rs = [r for r in sweeps if r["kind"] == kind and r["mode"] == mode and r["selection"] == sel]
                ks = sorted({r["k"] for r in rs})
                y = [np.mean([r["delta_s"] for r in rs if r["k"] == k]) for k in ks]
                fig.add_trace(
                    go.Scatter(x=ks, y=y, mode="lines+markers", name=f"{kind} {mode} {sel}", line=dict(dash=dash)),
                    row=1,
                    col=c + 1,
                )
                if sel == "random" and rs and rs[0].get("delta_s_seeds"):
                    # per seed: the mean over emotions and layers; the band spans the seeds
                    per_seed = np.array(
                        [
                            [np.mean([r["delta_s_seeds"][s] for r in rs if r["k"] == k]) for k in ks]
                            for s in range(len(rs[0]["delta_s_seeds"]))
                        ]
                    )
                    add_band(
                        fig, ks, per_seed.min(0), per_seed.max(0), f"{kind} {mode} random: seeds", row=1, col=c + 1
                    )
    fig.update_xaxes(type="log", title="k units per layer")
    fig.update_yaxes(title="mean change of emotion score s")
    fig.update_layout(title="Ablation (zero) and enhancement (add Delta-mu): top-k vs random units")
    paths += save_figure(fig, out, "ablation_long_tail")

    # Sorted contribution curves
    fig = make_subplots(rows=1, cols=2, subplot_titles=["neuron contributions (sorted)", "head importance (sorted)"])
    for i, e in enumerate(emotions):
        nv = np.sort(neurons[:, i].flatten().numpy())[::-1][:200]
        hv = np.sort(heads[:, i].flatten().numpy())[::-1]
        fig.add_trace(go.Scatter(y=nv, name=e, legendgroup=e, line=dict(color=colors[i % len(colors)])), row=1, col=1)
        fig.add_trace(
            go.Scatter(y=hv, name=e, legendgroup=e, showlegend=False, line=dict(color=colors[i % len(colors)])),
            row=1,
            col=2,
        )
    fig.update_layout(title="Long tail of component scores")
    paths += save_figure(fig, out, "component_long_tail")

    # Sublayer influence heatmap
    z = influence.permute(2, 0, 1).reshape(len(emotions), -1).numpy()
    xs = [f"{'a' if p == 0 else 'm'}{l}" for l in range(L) for p in range(2)]
    fig = go.Figure(go.Heatmap(z=z, x=xs, y=list(emotions), colorscale="RdBu", zmid=0))
    fig.update_layout(title="Sublayer causal influence (normalised per emotion)", xaxis_title="sublayer")
    paths += save_figure(fig, out, "influence_heatmap")

    # Circuit allocation per layer + overlap
    fig = make_subplots(rows=1, cols=2, subplot_titles=["neurons per layer", "heads per layer"])
    for i, c in enumerate(circuits):
        nn = [len(lc.neurons) for lc in c.layers]
        hh = [len(lc.heads) for lc in c.layers]
        fig.add_trace(go.Bar(y=nn, name=c.emotion, legendgroup=c.emotion, marker_color=colors[i % len(colors)]), 1, 1)
        fig.add_trace(
            go.Bar(y=hh, name=c.emotion, legendgroup=c.emotion, showlegend=False, marker_color=colors[i % len(colors)]),
            1,
            2,
        )
    fig.update_layout(title="Circuit allocation per layer", barmode="group")
    paths += save_figure(fig, out, "circuit_allocation")

    from circuits.circuit import overlap

    for kind in ("neurons", "heads"):
        m = np.array([[overlap(a, b)[kind] for b in circuits] for a in circuits])
        fig = go.Figure(go.Heatmap(z=m, x=list(emotions), y=list(emotions), zmin=0, zmax=1))
        fig.update_layout(title=f"Cross-emotion circuit overlap ({kind}, Jaccard)")
        paths += save_figure(fig, out, f"circuit_overlap_{kind}")

    fig = go.Figure(go.Heatmap(z=logit_lens.T.numpy(), y=list(emotions), colorscale="RdBu", zmid=0))
    fig.update_layout(title="Logit lens: emotion-word logit difference by layer", xaxis_title="layer")
    paths += save_figure(fig, out, "logit_lens")
    return paths
