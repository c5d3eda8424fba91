"""``emocircuits figures``: redraw every figure of a discovery run (+ evaluation) and a VA run."""

from __future__ import annotations

import argparse


def _figures(args: argparse.Namespace) -> int:
    import os

    from circuits.runs.redraw import make_figures

    for p in make_figures(args.run, va=args.va, png_dir=args.png_dir):
        rel = os.path.relpath(p)
        print(p if rel.startswith("..") else rel)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    fig = sub.add_parser("figures", help="regenerate every figure of a discovery run (+ evaluation) and a VA run")
    fig.add_argument("--run", "--discover", dest="run", required=True, help="a discovery run directory")
    fig.add_argument("--va", default=None, help="a VA run directory (emocircuits va)")
    fig.add_argument("--png-dir", default=None, help="copy the PNGs here (make figures: the repo's figures/)")
    fig.set_defaults(func=_figures)
