"""Figures of a VA run: the circle, steering curves, refusal / sycophancy curves."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def va_figures(out: Path, summary: dict) -> list[str]:
    """The circumplex (emotions in the VA plane with the fitted circle) and steering curves; when the
    probes ran, the refusal curves (overall and per prompt type), the refusal-token logit difference
    and the sycophancy curve over alpha (valence axis, arousal axis, random directions). Each figure
    is written as ``figures/<name>.html`` and, where an exporter is available, ``.png``."""
    import plotly.graph_objects as go

    from circuits.figures.render import save_figure

    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    c = summary["circumplex"]
    fig = go.Figure()
    t = np.linspace(0, 2 * np.pi, 100)
    fig.add_trace(
        go.Scatter(
            x=c["center"][0] + c["radius"] * np.cos(t),
            y=c["center"][1] + c["radius"] * np.sin(t),
            mode="lines",
            name="circle fit",
            line=dict(dash="dot"),
        )
    )
    for e, (v, a) in summary["projection"].items():
        fig.add_trace(go.Scatter(x=[v], y=[a], mode="markers+text", text=[e], name=e, textposition="top center"))
    fig.update_layout(
        title=f"Emotions in the valence-arousal plane (layer {summary['layer']})",
        xaxis_title="valence axis",
        yaxis_title="arousal axis",
    )
    paths = save_figure(fig, figdir, "va_circle")
    fig = go.Figure()
    for name in dict.fromkeys(s["direction"] for s in summary["steering"]):
        rs = [s for s in summary["steering"] if s["direction"] == name]
        for key in ("valence_proj", "arousal_proj"):
            if name.startswith("random") and key == "arousal_proj":
                continue
            fig.add_trace(
                go.Scatter(
                    x=[r["alpha"] for r in rs],
                    y=[r[key] for r in rs],
                    mode="lines+markers",
                    name=f"steer {name}: {key}",
                    line=dict(dash="dot" if name.startswith("random") else "solid"),
                )
            )
    fig.update_layout(title="VA steering: projection of the replies on the axes", xaxis_title="alpha (x residual RMS)")
    paths += save_figure(fig, figdir, "va_steering")
    probes = summary.get("probes") or {}
    if probes.get("refusal"):
        paths += save_figure(_refusal_figure(probes["refusal"]), figdir, "va_refusal")
        paths += save_figure(
            _probe_curve_figure(
                probes["refusal"],
                lambda r: r["token_logits"]["difference"],
                "Refusal-token check: mean logit of refusal minus compliance tokens (first reply token)",
                "refusal - compliance logit",
            ),
            figdir,
            "va_refusal_tokens",
        )
    if probes.get("sycophancy"):
        paths += save_figure(
            _probe_curve_figure(
                probes["sycophancy"],
                lambda r: r["score"],
                "Sycophancy under VA steering: p(matching answer) / (p(matching) + p(not matching))",
                "sycophancy score",
            ),
            figdir,
            "va_sycophancy",
        )
    return paths


_DIRECTION_COLOURS = {"valence": "#1f77b4", "arousal": "#d62728"}


def _probe_traces(rows: Sequence[dict], value: Callable[[dict], float], legend: bool = True) -> list:
    """One line over alpha per steering direction: valence and arousal solid, each random direction
    (equal norm, one per seed) dotted grey under one legend entry."""
    import plotly.graph_objects as go

    traces, random_shown = [], False
    for name in dict.fromkeys(r["direction"] for r in rows):
        rs = sorted((r for r in rows if r["direction"] == name), key=lambda r: r["alpha"])
        rnd = name.startswith("random")
        show = legend and not (rnd and random_shown)
        random_shown |= rnd
        traces.append(
            go.Scatter(
                x=[r["alpha"] for r in rs],
                y=[value(r) for r in rs],
                mode="lines+markers",
                name="random directions" if rnd else f"{name} axis",
                legendgroup="random" if rnd else name,
                showlegend=show,
                line=dict(dash="dot", color="#999999", width=1) if rnd else dict(color=_DIRECTION_COLOURS.get(name)),
            )
        )
    return traces


def _probe_curve_figure(rows: Sequence[dict], value: Callable[[dict], float], title: str, y_title: str):
    """A probe's value over alpha for the valence axis, the arousal axis and the random directions."""
    import plotly.graph_objects as go

    fig = go.Figure(_probe_traces(rows, value))
    fig.update_layout(title=title, xaxis_title="alpha (x residual RMS)", yaxis_title=y_title)
    return fig


def _refusal_figure(rows: Sequence[dict]):
    """Refusal rate over alpha, one panel for all prompts and one per prompt type (e.g. harmful,
    benign / over-refusal), each with the valence axis, the arousal axis and the random directions."""
    from plotly.subplots import make_subplots

    from circuits.va.probes import UNTYPED

    types = list(dict.fromkeys(t for r in rows for t in r.get("refusal_rate_by_type", {})))
    panels = [("all prompts", lambda r: r["refusal_rate"])]
    if len(types) > 1 or (types and types[0] != UNTYPED):
        panels += [(f"type: {t}", lambda r, t=t: r["refusal_rate_by_type"].get(t, float("nan"))) for t in types]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], shared_yaxes=True)
    for i, (_, value) in enumerate(panels, start=1):
        for tr in _probe_traces(rows, value, legend=i == 1):
            fig.add_trace(tr, row=1, col=i)
        fig.update_xaxes(title_text="alpha (x residual RMS)", row=1, col=i)
    fig.update_yaxes(title_text="refusal rate", range=[-0.05, 1.05], row=1, col=1)
    fig.update_layout(title="Refusal under VA steering (phrase detector)")
    return fig
