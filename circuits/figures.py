"""Plotly figures of a discovery run (HTML always; PNG too when a static exporter such as kaleido
with a browser is available)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from circuits.io import write_text_atomic


def _browser_available() -> bool:
    """kaleido >= 1 renders through a Chrome/Chromium; without one ``write_image`` can hang."""
    import shutil

    return any(shutil.which(b) for b in ("google-chrome", "chromium", "chromium-browser", "chrome"))


def _axis_index(name: str) -> int:
    return int(name[1:]) if len(name) > 1 else 1


def plotly_to_png(fig: Any, path: Path, width: float = 9.0, height: float = 5.0) -> bool:
    """Render the scatter / bar / heatmap traces of a plotly figure with matplotlib (a static copy
    for READMEs when no browser is available for kaleido). Returns False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    n_axes = max([_axis_index(getattr(t, "xaxis", None) or "x") for t in fig.data] + [1])
    figure, axes = plt.subplots(1, n_axes, figsize=(width, height), squeeze=False)
    titles = [a.text for a in (fig.layout.annotations or [])]
    bars: dict[int, int] = {}
    for t in fig.data:
        ax = axes[0][_axis_index(getattr(t, "xaxis", None) or "x") - 1]
        label = t.name if getattr(t, "showlegend", None) is not False else None
        if t.type == "heatmap":
            z = np.asarray(t.z, dtype=float)
            im = ax.imshow(z, aspect="auto", cmap="RdBu_r" if t.zmid is not None else "viridis",
                           vmin=-np.nanmax(np.abs(z)) if t.zmid is not None else t.zmin,
                           vmax=np.nanmax(np.abs(z)) if t.zmid is not None else t.zmax)
            if t.y is not None:
                ax.set_yticks(range(len(t.y)), list(t.y))
            if t.x is not None and len(t.x) <= 24:
                ax.set_xticks(range(len(t.x)), list(t.x), rotation=90)
            figure.colorbar(im, ax=ax)
        elif t.type == "bar":
            y = np.asarray(t.y, dtype=float)
            x = np.arange(len(y)) if t.x is None else np.arange(len(t.x))
            i = bars.get(id(ax), 0)
            bars[id(ax)] = i + 1
            ax.bar(x + 0.12 * i, y, width=0.12, label=label)
            if t.x is not None:
                ax.set_xticks(x, list(t.x), rotation=30)
        else:
            y = np.asarray(t.y, dtype=float)
            x = np.arange(len(y)) if t.x is None else np.asarray(t.x, dtype=float)
            mode = t.mode or "lines"
            dash = getattr(getattr(t, "line", None), "dash", None)
            ls = ":" if dash in ("dot", "dash") else "-"
            if "lines" in mode:
                ax.plot(x, y, ls, marker="o" if "markers" in mode else None, ms=3, label=label)
            else:
                ax.scatter(x, y, s=6, label=label)
    for i, ax in enumerate(axes[0]):
        if i < len(titles):
            ax.set_title(titles[i], fontsize=9)
        xa = fig.layout["xaxis" if i == 0 else f"xaxis{i + 1}"]
        if xa is not None and xa.type == "log":
            ax.set_xscale("log")
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        axes[0][-1].legend(list(handles.values()), list(handles), fontsize=7, loc="best")
    figure.suptitle(fig.layout.title.text or "", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def _save(fig: Any, out: Path, name: str) -> list[str]:
    """HTML always; PNG with kaleido when a browser is present, else with matplotlib if installed."""
    paths = []
    html = out / f"{name}.html"
    write_text_atomic(html, fig.to_html(include_plotlyjs="cdn", full_html=True))
    paths.append(str(html))
    png = out / f"{name}.png"
    done = False
    if _browser_available():
        try:
            fig.write_image(str(png), width=900, height=520, scale=1)
            done = True
        except Exception:
            done = False
    if not done:
        done = plotly_to_png(fig, png)
    if done:
        paths.append(str(png))
    return paths


def discovery_figures(
    run_dir: str | Path, *, emotions: Sequence[str], pca: dict, evidence: dict, neurons: torch.Tensor,
    heads: torch.Tensor, sweeps: list[dict], influence: torch.Tensor, circuits: list, logit_lens: torch.Tensor,
) -> list[str]:
    """Write the discovery figures into ``run_dir/figures`` and return their paths."""
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
            fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=e, legendgroup=e,
                                     showlegend=c == 0, marker=dict(size=4, color=colors[i % len(colors)])),
                          row=1, col=c + 1)
    fig.update_layout(title="Emotion directions: PCA of group-centred last-token residuals (resid_post)")
    paths += _save(fig, out, "pca_by_layer")

    # Cross-context cosine and probe accuracy
    fig = go.Figure()
    for key, name in [("cosine_by_theme", "cosine, disjoint themes"), ("cosine_by_valence", "cosine, valence pairs")]:
        for p, point in enumerate(("attn", "mlp")):
            fig.add_trace(go.Scatter(y=evidence[key][p], mode="lines+markers", name=f"{name} ({point})"))
    for point, acc in evidence["probe_accuracy"].items():
        fig.add_trace(go.Scatter(y=acc, mode="lines+markers", name=f"probe accuracy ({point})", line=dict(dash="dot")))
    fig.update_layout(title="Context-agnostic directions by layer", xaxis_title="layer", yaxis_title="value")
    paths += _save(fig, out, "direction_evidence")

    # Long-tail curves (top vs random), zero ablation and add, summed over layers of the mid network
    fig = make_subplots(rows=1, cols=2, subplot_titles=["neurons", "heads"])
    for c, kind in enumerate(("neurons", "heads")):
        for mode in sorted({r["mode"] for r in sweeps}):
            for sel, dash in (("top", "solid"), ("random", "dot")):
                rs = [r for r in sweeps if r["kind"] == kind and r["mode"] == mode and r["selection"] == sel]
                ks = sorted({r["k"] for r in rs})
                y = [np.mean([r["delta_s"] for r in rs if r["k"] == k]) for k in ks]
                fig.add_trace(go.Scatter(x=ks, y=y, mode="lines+markers", name=f"{kind} {mode} {sel}",
                                         line=dict(dash=dash)), row=1, col=c + 1)
    fig.update_xaxes(type="log", title="k units per layer")
    fig.update_yaxes(title="mean change of emotion score s")
    fig.update_layout(title="Ablation (zero) and enhancement (add Delta-mu): top-k vs random units")
    paths += _save(fig, out, "ablation_long_tail")

    # Sorted contribution curves
    fig = make_subplots(rows=1, cols=2, subplot_titles=["neuron contributions (sorted)", "head importance (sorted)"])
    for i, e in enumerate(emotions):
        nv = np.sort(neurons[:, i].flatten().numpy())[::-1][:200]
        hv = np.sort(heads[:, i].flatten().numpy())[::-1]
        fig.add_trace(go.Scatter(y=nv, name=e, legendgroup=e, line=dict(color=colors[i % len(colors)])), row=1, col=1)
        fig.add_trace(go.Scatter(y=hv, name=e, legendgroup=e, showlegend=False,
                                 line=dict(color=colors[i % len(colors)])), row=1, col=2)
    fig.update_layout(title="Long tail of component scores")
    paths += _save(fig, out, "component_long_tail")

    # Sublayer influence heatmap
    z = influence.permute(2, 0, 1).reshape(len(emotions), -1).numpy()
    xs = [f"{'a' if p == 0 else 'm'}{l}" for l in range(L) for p in range(2)]
    fig = go.Figure(go.Heatmap(z=z, x=xs, y=list(emotions), colorscale="RdBu", zmid=0))
    fig.update_layout(title="Sublayer causal influence (normalised per emotion)", xaxis_title="sublayer")
    paths += _save(fig, out, "influence_heatmap")

    # Circuit allocation per layer + overlap
    fig = make_subplots(rows=1, cols=2, subplot_titles=["neurons per layer", "heads per layer"])
    for i, c in enumerate(circuits):
        nn = [len(lc.neurons) for lc in c.layers]
        hh = [len(lc.heads) for lc in c.layers]
        fig.add_trace(go.Bar(y=nn, name=c.emotion, legendgroup=c.emotion, marker_color=colors[i % len(colors)]), 1, 1)
        fig.add_trace(go.Bar(y=hh, name=c.emotion, legendgroup=c.emotion, showlegend=False,
                             marker_color=colors[i % len(colors)]), 1, 2)
    fig.update_layout(title="Circuit allocation per layer", barmode="group")
    paths += _save(fig, out, "circuit_allocation")

    from circuits.circuit import overlap

    for kind in ("neurons", "heads"):
        m = np.array([[overlap(a, b)[kind] for b in circuits] for a in circuits])
        fig = go.Figure(go.Heatmap(z=m, x=list(emotions), y=list(emotions), zmin=0, zmax=1))
        fig.update_layout(title=f"Cross-emotion circuit overlap ({kind}, Jaccard)")
        paths += _save(fig, out, f"circuit_overlap_{kind}")

    fig = go.Figure(go.Heatmap(z=logit_lens.T.numpy(), y=list(emotions), colorscale="RdBu", zmid=0))
    fig.update_layout(title="Logit lens: emotion-word logit difference by layer", xaxis_title="layer")
    paths += _save(fig, out, "logit_lens")
    return paths


def figures_from_run(run_dir: str | Path) -> list[str]:
    """Regenerate every discovery figure from a run directory's files (store, scores, CSVs, circuits)."""
    import csv
    import json

    from safetensors.torch import load_file

    from circuits.circuit import load_circuits
    from circuits.directions import pca_by_layer
    from circuits.store import ActivationStore

    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    store = ActivationStore.load(run / "store")
    emotions = list(summary.get("config", {}).get("emotions", store.emotions))
    scores = load_file(str(run / "scores.safetensors"))
    evidence = json.loads((run / "directions_evidence.json").read_text())
    sweeps = [dict(r, k=int(r["k"]), layer=int(r["layer"]), delta_s=float(r["delta_s"]))
              for r in csv.DictReader(open(run / "sweeps.csv"))]
    L = scores["neurons"].shape[0]
    infl = torch.zeros(L, 2, len(emotions))
    for r in csv.DictReader(open(run / "influence.csv")):
        infl[int(r["layer"]), ("attn", "mlp").index(r["sublayer"]), emotions.index(r["emotion"])] = float(r["normalised"])
    lens = torch.tensor([[float(r[e]) for e in emotions] for r in csv.DictReader(open(run / "logit_lens.csv"))])
    circuits = list(load_circuits(run / "circuits", emotions=emotions).values())
    return discovery_figures(run, emotions=emotions, pca=pca_by_layer(store, "mlp", emotions=emotions),
                             evidence=evidence, neurons=scores["neurons"], heads=scores["heads"], sweeps=sweeps,
                             influence=infl, circuits=circuits, logit_lens=lens)
