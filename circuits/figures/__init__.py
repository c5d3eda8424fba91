"""Figures (plotly HTML, PNG when possible): one saver (``render.save_figure``) and the figures of a
discovery run and of a VA run."""

from circuits.figures.discovery import cosine_heatmap, cross_context_cosines, discovery_figures, figures_from_run
from circuits.figures.evaluation import accuracy_bars
from circuits.figures.make import make_figures
from circuits.figures.render import plotly_to_png, save_figure

__all__ = ["accuracy_bars", "make_figures", "cosine_heatmap", "cross_context_cosines", "discovery_figures", "figures_from_run", "plotly_to_png",
           "save_figure"]
