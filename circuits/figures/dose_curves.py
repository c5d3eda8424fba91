"""The dose-response figure: one builder, used by ``emocircuits dose-response`` (``dose_response.html``)
and by the run report's dose section."""

from __future__ import annotations

from typing import Any

from circuits.figures.discovery import add_band
from circuits.figures.render import COLORS


def dose_response_figure(d: dict[str, Any], title: str | None = None) -> Any:
    """The dose-response figure of a ``dose_response.json`` dict: judged (fluent) accuracy, emotion score and
    perplexity (log axis) against strength (alpha, or lambda for circuits), one colour per steered method,
    its random controls of equal norm as a dotted mean line inside a min-max band over seeds, prompting
    and neutral as flat dashed lines. Panels whose metric no method has are left out. Returns a plotly
    Figure (written by :func:`circuits.figures.render.save_figure` or embedded in the run report)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = [
        k
        for k in ("accuracy", "emotion_score", "perplexity")
        if any(p.get(k) is not None for t in (d.get("methods") or {}).values() for p in t.get("points", []))
    ]
    fluent = any("broken_share" in p for t in (d.get("methods") or {}).values() for p in t.get("points", []))
    titles = {"accuracy": "fluent accuracy (broken replies are misses)" if fluent else "accuracy"}
    fig = make_subplots(
        rows=1, cols=max(1, len(keys)), subplot_titles=[titles.get(k, k.replace("_", " ")) for k in keys]
    )
    for c, key in enumerate(keys, start=1):
        xs_all = []
        for i, (method, t) in enumerate((d.get("methods") or {}).items()):
            color = COLORS[i % len(COLORS)]
            ctrl = [p for p in t.get("control", []) if p.get(key) is not None]
            if ctrl:
                add_band(
                    fig,
                    [p["strength"] for p in ctrl],
                    [p["lo"][key] for p in ctrl],
                    [p["hi"][key] for p in ctrl],
                    f"{method} random controls (min-max over seeds)",
                    color=color,
                    legendgroup=f"{method} random controls (min-max over seeds)",
                    showlegend=c == 1,
                    row=1,
                    col=c,
                )
                fig.add_trace(
                    go.Scatter(
                        x=[p["strength"] for p in ctrl],
                        y=[p[key] for p in ctrl],
                        mode="lines",
                        line=dict(dash="dot", color=color),
                        legendgroup=method + "c",
                        name=f"{method} random control (mean)",
                        showlegend=c == 1,
                    ),
                    row=1,
                    col=c,
                )
            pts = [p for p in t.get("points", []) if p.get(key) is not None]
            xs_all += [p["strength"] for p in pts]
            fig.add_trace(
                go.Scatter(
                    x=[p["strength"] for p in pts],
                    y=[p[key] for p in pts],
                    mode="lines+markers",
                    name=method,
                    legendgroup=method,
                    showlegend=c == 1,
                    line=dict(color=color),
                ),
                row=1,
                col=c,
            )
        for name, dash in (("prompting", "dash"), ("neutral", "dashdot")):
            v = ((d.get("reference") or {}).get(name) or {}).get(key)
            if v is not None and xs_all:
                fig.add_trace(
                    go.Scatter(
                        x=[min(xs_all), max(xs_all)],
                        y=[v, v],
                        mode="lines",
                        name=name,
                        legendgroup=name,
                        showlegend=c == 1,
                        line=dict(dash=dash, color="grey"),
                    ),
                    row=1,
                    col=c,
                )
        if key == "perplexity":
            fig.update_yaxes(type="log", row=1, col=c)
    fig.update_xaxes(title_text="strength (alpha, or lambda for circuits)")
    fig.update_layout(height=420, title=title or "Dose-response with random controls of equal norm")
    return fig
