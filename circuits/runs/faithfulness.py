"""``faithfulness``: measure the faithfulness of a discovery run's circuits (also a step of ``discover``)
and write it into the circuit files (schema version 2) and ``faithfulness.json``.

    emocircuits faithfulness --model smollm2-135m --run runs/smol-full --rows 24 --seeds 3 --judge-rows 4
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from circuits.core.artifacts import write_json_atomic
from circuits.core.model import ModelHandle
from circuits.runs import layout


def run_faithfulness(model: ModelHandle, run_dir: str | Path, cfg: Any = None, *, judge: Any = None,
                     emotions: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Faithfulness of the circuits of ``run_dir`` (:func:`circuits.circuit.faithfulness.circuit_faithfulness`
    on the run's store and directions). Each circuit file is rewritten with its ``faithfulness`` block
    (atomically, one file at a time); ``faithfulness.json`` holds ``{"summary", "blocks", "config"}``."""
    from circuits.circuit import load_circuits
    from circuits.circuit.faithfulness import FaithfulnessConfig, circuit_faithfulness, faithfulness_summary
    from circuits.discovery.directions import Directions
    from circuits.discovery.store import ActivationStore
    from circuits.runs.evaluate import check_run_dir

    run = check_run_dir(run_dir)
    cfg = cfg or FaithfulnessConfig()
    store = ActivationStore.load(run / layout.STORE_DIR, model)
    dirs = Directions.load(run / layout.DIRECTIONS)
    circuits = load_circuits(run / layout.CIRCUITS_DIR, model=model, emotions=emotions)
    blocks = circuit_faithfulness(model, store, dirs, list(circuits.values()), cfg, judge=judge, progress=progress)
    for emotion, c in circuits.items():
        c.faithfulness = blocks[emotion]
        c.save(run / layout.CIRCUITS_DIR / f"{emotion}.json")
    from circuits.judges.base import judge_name

    result = {"summary": faithfulness_summary(blocks), "blocks": blocks, "config": cfg.to_dict(),
              "judge": judge_name(judge) if cfg.judge_rows else None, "model": model.describe()}
    write_json_atomic(run / layout.FAITHFULNESS_JSON, result)
    return result


def _faithfulness(args: argparse.Namespace) -> int:
    from circuits.circuit.faithfulness import FaithfulnessConfig, faithfulness_table
    from circuits.cli import _check_model_args, _judge, _load
    from circuits.runs.evaluate import check_run_dir

    _check_model_args(args)
    check_run_dir(args.run)
    cfg = FaithfulnessConfig(rows=args.rows, seeds=args.seeds, judge_rows=args.judge_rows,
                             max_new_tokens=args.max_new_tokens, seed=args.seed)
    judge = _judge(args) if args.judge_rows else None
    res = run_faithfulness(_load(args), args.run, cfg, judge=judge, emotions=args.emotions)
    print("circuit faithfulness (emotion score at the last token; random: circuits of equal size per layer)")
    print(faithfulness_table(res["summary"]))
    print(f"wrote {Path(args.run) / layout.FAITHFULNESS_JSON} and the faithfulness block of every circuit file")
    return 0


def _positive(kind: type, minimum: int):
    def parse(text: str):
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {text}")
        return value
    return parse


def register_cli(sub: argparse._SubParsersAction) -> None:
    from circuits.cli import _judge_arg, _model_args

    p = sub.add_parser("faithfulness", help="circuit faithfulness of a discovery run against random circuits")
    _model_args(p)
    p.add_argument("--run", required=True, help="a discovery run directory")
    p.add_argument("--emotions", nargs="+", default=None)
    p.add_argument("--rows", type=_positive(int, 1), default=24, help="emotion-prompt rows per emotion (default 24)")
    p.add_argument("--seeds", type=_positive(int, 1), default=3, help="random circuits (default 3)")
    p.add_argument("--judge-rows", type=_positive(int, 0), default=0,
                   help="rows per emotion for judged generations under each condition (default 0: scores only)")
    p.add_argument("--max-new-tokens", type=_positive(int, 1), default=32)
    p.add_argument("--seed", type=int, default=0)
    _judge_arg(p, "the judged generations", modes=False)
    p.set_defaults(func=_faithfulness)
