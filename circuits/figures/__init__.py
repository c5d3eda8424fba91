"""Figures (plotly HTML, PNG when possible) drawn from in-memory results: one saver
(``render.save_figure``) and the figures of discovery, evaluation and VA results. Reading run
directories from disk is :mod:`circuits.runs.redraw`."""

from circuits.figures.discovery import cosine_heatmap, cross_context_cosines, discovery_figures
from circuits.figures.evaluation import accuracy_bars
from circuits.figures.render import plotly_to_png, save_figure

__all__ = [
    "accuracy_bars",
    "cosine_heatmap",
    "cross_context_cosines",
    "discovery_figures",
    "plotly_to_png",
    "save_figure",
]
