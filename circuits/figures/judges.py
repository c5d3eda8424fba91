"""The reliability figure of ``emocircuits judge eval``: each judge's hit rate against its confidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.figures.render import COLORS, save_figure

PANELS = (
    ("label", "7-way verdict: top label's probability"),
    ("match", "match mode: P(emotion) of every (reply, emotion) pair"),
)
"""The two reliabilities of :func:`circuits.judges.calibrate.judge_reliability`, one panel each."""


def reliability_figure(by_judge: dict[str, dict[str, Any]], title: str = "") -> Any:
    """One panel per entry of :data:`PANELS`: per judge, the share correct of each non-empty
    confidence bin against the bin's mean confidence (a calibrated judge lies on the diagonal),
    both expected calibration errors in its legend entry (one per judge, shared by the panels). ``by_judge``: judge name -> the dict of
    :func:`~circuits.judges.calibrate.judge_reliability`."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(PANELS), subplot_titles=[t for _, t in PANELS], horizontal_spacing=0.1)
    for col, (kind, _) in enumerate(PANELS, start=1):
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line=dict(color="#999", dash="dot"),
                name="calibrated",
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
        for i, (name, rel) in enumerate(by_judge.items()):
            r = rel[kind]
            full = [b for b in r["bins"] if b["n"]]
            fig.add_trace(
                go.Scatter(
                    x=[b["confidence"] for b in full],
                    y=[b["accuracy"] for b in full],
                    mode="lines+markers",
                    marker=dict(size=[6 + min(14, b["n"] ** 0.5) for b in full]),
                    line=dict(color=COLORS[i % len(COLORS)]),
                    name=f"{name}: ECE {rel['label']['ece']:.3f} (verdict), {rel['match']['ece']:.3f} (match)",
                    legendgroup=name,
                    showlegend=col == 1,
                    customdata=[[b["n"], b["lo"], b["hi"]] for b in full],
                    hovertemplate="confidence %{x:.2f} (bin %{customdata[1]:.1f}-%{customdata[2]:.1f}): "
                    "%{y:.1%} correct of %{customdata[0]}<extra>" + name + "</extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="mean confidence in bin", range=[0, 1], row=1, col=col)
        fig.update_yaxes(title_text="share correct", range=[0, 1.02], row=1, col=col)
    fig.update_layout(
        title=title or "Judge reliability (marker size: items in the bin)",
        legend=dict(orientation="h", x=0, y=-0.2),
        height=560,
    )
    return fig


def reliability_page(by_judge: dict[str, dict[str, Any]], figdir: str | Path, title: str = "") -> list[str]:
    """:func:`reliability_figure` -> ``figdir/reliability.html`` (and ``.png`` where possible)."""
    figdir = Path(figdir)
    figdir.mkdir(parents=True, exist_ok=True)
    return save_figure(reliability_figure(by_judge, title), figdir, "reliability", width=1100, height=560)
