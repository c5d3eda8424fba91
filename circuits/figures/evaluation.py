"""Figures of an evaluation: method accuracy per emotion (fluent accuracy where the fluency check ran)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from circuits.figures.render import save_figure


def accuracy_figure(
    methods: dict[str, dict[str, Any]], emotions: Sequence[str], fluent: bool, height: int | None = None
) -> Any:
    """Grouped bars of each method's accuracy per emotion (``methods``: ``evaluation.json``'s entries,
    ``per_emotion`` and ``accuracy`` read), the overall value in each legend entry. ``fluent``: the
    accuracies are fluent accuracy (broken replies counted as misses), and the titles say so."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, m in methods.items():
        pe = m.get("per_emotion") or {}
        acc = m.get("accuracy")
        label = f"{name} ({acc:.0%})" if isinstance(acc, (int, float)) else name
        fig.add_trace(go.Bar(name=label, x=list(emotions), y=[pe.get(e) for e in emotions]))
    what = "fluent accuracy" if fluent else "accuracy"
    fig.update_layout(
        barmode="group",
        title=f"Judged as the target emotion, per method: {what}"
        + (" (broken replies count as misses)" if fluent else ""),
        yaxis_title=what,
        yaxis_range=[0, 1.45],
        yaxis_tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0],
        legend=dict(orientation="h", x=0, y=1),
    )  # headroom above the bars for the legend
    if height is not None:
        fig.update_layout(height=height)
    return fig


def accuracy_bars(result: dict[str, Any], figdir: str | Path) -> list[str]:
    """:func:`accuracy_figure` of an ``evaluation.json`` object -> ``figdir/method_accuracy.*``."""
    methods = result["methods"]
    emotions = list(next(iter(methods.values()))["per_emotion"]) if methods else []
    fig = accuracy_figure(methods, emotions, result.get("fluency") is not None)
    figdir = Path(figdir)
    figdir.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, figdir, "method_accuracy")
