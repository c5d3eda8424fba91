"""Figures of an evaluation: method accuracy per emotion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.figures.render import save_figure


def accuracy_bars(result: dict[str, Any], figdir: str | Path) -> list[str]:
    """Grouped bars of judged accuracy per emotion and method (``result``: an ``evaluation.json``
    object) -> ``figdir/method_accuracy.*``."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, m in result["methods"].items():
        fig.add_trace(
            go.Bar(name=f"{name} ({m['accuracy']:.0%})", x=list(m["per_emotion"]), y=list(m["per_emotion"].values()))
        )
    fig.update_layout(
        barmode="group",
        title="Judged as the target emotion, per method (held-out SEV)",
        yaxis_title="accuracy",
        yaxis_range=[0, 1.45],
        yaxis_tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0],
        legend=dict(orientation="h", x=0, y=1),
    )  # headroom above the bars for the legend
    figdir = Path(figdir)
    figdir.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, figdir, "method_accuracy")
