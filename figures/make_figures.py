"""Regenerate every figure from run directories and copy the PNGs used by the README here.

    python figures/make_figures.py --discover runs/demo --va runs/va      (or: make figures)

* discovery run (``emocircuits discover`` / ``demo``): direction PCA by layer, cross-context cosine
  heatmap, probe accuracy, neuron and head long-tail curves, ablation curves, sublayer influence heatmap,
  circuit allocation per layer and cross-emotion overlap, logit lens;
* its ``evaluation.json`` (``emocircuits evaluate``): method accuracy bars;
* VA run (``emocircuits va``): the VA circle and the steering curves.

HTML (interactive) files are written next to the run's data in ``<run>/figures/``; PNGs are copied
into this folder, or into ``--png-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from circuits.figures import _save, figures_from_run  # noqa: E402


def accuracy_bars(run: Path) -> list[str]:
    import plotly.graph_objects as go

    result = json.loads((run / "evaluation.json").read_text())
    fig = go.Figure()
    for name, m in result["methods"].items():
        fig.add_trace(go.Bar(name=f"{name} ({m['accuracy']:.0%})", x=list(m["per_emotion"]),
                             y=list(m["per_emotion"].values())))
    fig.update_layout(barmode="group", title="Judged as the target emotion, per method (held-out SEV)",
                      yaxis_title="accuracy", yaxis_range=[0, 1.45], yaxis_tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0],
                      legend=dict(orientation="h", x=0, y=1))  # headroom above the bars for the legend
    (run / "figures").mkdir(parents=True, exist_ok=True)
    return _save(fig, run / "figures", "method_accuracy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--discover", default="runs/demo", help="a discovery run directory")
    ap.add_argument("--va", default=None, help="a VA run directory (emocircuits va)")
    ap.add_argument("--png-dir", default=str(HERE),
                    help="where to copy the PNGs (default: this figures/ folder, the README's copies)")
    args = ap.parse_args()
    png_dir = Path(args.png_dir)
    png_dir.mkdir(parents=True, exist_ok=True)
    paths = figures_from_run(args.discover)
    run = Path(args.discover)
    if (run / "evaluation.json").exists():
        paths += accuracy_bars(run)
    if args.va:
        from circuits.va import va_figures

        va_run = Path(args.va)
        paths += va_figures(va_run, json.loads((va_run / "summary.json").read_text()))
    for p in paths:
        if p.endswith(".png"):
            dest = png_dir / Path(p).name
            shutil.copy(p, dest)
            rel = os.path.relpath(dest)
            print(dest if rel.startswith("..") else rel)
        else:
            print(p)


if __name__ == "__main__":
    main()
