"""Figures of an evaluation: method accuracy per emotion (from a run's ``evaluation.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from circuits.figures.render import save_figure


def accuracy_bars(run: str | Path) -> list[str]:
    """Grouped bars of judged accuracy per emotion and method -> ``<run>/figures/method_accuracy.*``."""
    import plotly.graph_objects as go

    run = Path(run)
    result = json.loads((run / "evaluation.json").read_text())
    fig = go.Figure()
    for name, m in result["methods"].items():
        fig.add_trace(go.Bar(name=f"{name} ({m['accuracy']:.0%})", x=list(m["per_emotion"]),
                             y=list(m["per_emotion"].values())))
    fig.update_layout(barmode="group", title="Judged as the target emotion, per method (held-out SEV)",
                      yaxis_title="accuracy", yaxis_range=[0, 1.45], yaxis_tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0],
                      legend=dict(orientation="h", x=0, y=1))  # headroom above the bars for the legend
    (run / "figures").mkdir(parents=True, exist_ok=True)
    return save_figure(fig, run / "figures", "method_accuracy")
