"""Every figure of a discovery run (with its evaluation) and of a VA run, PNGs copied to one folder
(``emocircuits figures``; ``make figures``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from circuits.figures.discovery import figures_from_run
from circuits.figures.evaluation import accuracy_bars


def make_figures(discover: str | Path, va: str | Path | None = None, png_dir: str | Path | None = None) -> list[str]:
    """Draw every figure: the discovery run's (``<run>/figures/``), its ``evaluation.json``'s method
    accuracy bars when present, and the VA run's. Returns the paths written; PNGs are then copied into
    ``png_dir`` (when given) and the copies are returned instead of the originals."""
    paths = figures_from_run(discover)
    run = Path(discover)
    if (run / "evaluation.json").exists():
        paths += accuracy_bars(run)
    if va is not None:
        from circuits.figures.va import va_figures

        va_run = Path(va)
        paths += va_figures(va_run, json.loads((va_run / "summary.json").read_text()))
    if png_dir is None:
        return paths
    png_dir = Path(png_dir)
    png_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        if p.endswith(".png"):
            dest = png_dir / Path(p).name
            shutil.copy(p, dest)
            out.append(str(dest))
        else:
            out.append(p)
    return out
