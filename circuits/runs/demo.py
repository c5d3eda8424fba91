"""``demo``: discovery, circuits, a strength sweep and the method comparison on one model, in one go.

The default model is the packaged real one, SmolLM2-135M-Instruct, with subsets sized to end within
about 15 minutes on 2 CPU cores (:data:`PRESETS`); ``--model toy`` runs the toy model with the full
discovery defaults. Every discovery and evaluation option can still be given on the command line; what
is not given comes from the model's preset, then from the config dataclasses.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from circuits.core.model import ModelHandle
from circuits.core.sev import PromptSettings, load_sev
from circuits.runs import layout
from circuits.runs.discover import DiscoverConfig, agreement_line, spread_layers
from circuits.runs.layout import EVALUATION_DIR
from circuits.steer.metrics import METHODS, EvalConfig

DEFAULT_MODEL = "smollm2-135m"

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "toy": {
        "discover": {},
        "evaluate": {"limit": 40, "positions": "last"},
    },
    "real": {
        # a 30-layer model on 2 cores: the slow reference measures (per-head ablation, intervention
        # influence) and the sweeps run on a few rows only; their agreement with the one-pass scores
        # is still reported
        # (judged generations under ablation are left out: `discover --generation-rows N` runs them)
        "discover": {
            "limit": 4,
            "reference_head_rows": 1,
            "influence_rows": 4,
            "alphas": (1.0,),
            "reference_layers": 2,
            "sweep_layers": 2,  # counts: spread over the depth (spread_layers)
            "sweep_ks": (16,),
            "sweep_seeds": 1,
            "sweep_rows": 2,
            "generation_rows": 0,
            # faithfulness on the emotion score only (no judged generations), nulls from 2 permutations
            "faithfulness_judge_rows": 0,
        },
        "evaluate": {
            "limit": 1,
            "positions": "paper",
            "sweep_limit": 1,
            "max_new_tokens": 32,
            "direction_alphas": (2.0, 4.0),
            "ev_alphas": (2.0, 4.0),
            "circuit_lambdas": (1.0, 2.0),
        },
    },
}
"""Per kind of model (``toy`` or ``real``), the discovery and evaluation options of the demo."""


def preset_for(model_name: str) -> dict[str, dict[str, Any]]:
    return PRESETS["toy" if str(model_name) == "toy" else "real"]


def resolve_layer_counts(values: dict[str, Any], n_layers: int) -> dict[str, Any]:
    """Preset layer options given as a count (an int) become that many :func:`spread_layers`."""
    return {
        k: spread_layers(n_layers, v) if k.endswith("_layers") and isinstance(v, int) else v for k, v in values.items()
    }


def run_demo(
    model: ModelHandle,
    out: str | Path,
    discover_cfg: DiscoverConfig,
    eval_cfg: EvalConfig,
    settings: PromptSettings,
    *,
    judge: Any = None,
    examples: int = 2,
    progress: bool = True,
    print_fn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Discover into ``out``, evaluate every method there (with the strength sweep ``eval_cfg`` asks for)
    and report the tables and a few steered replies, line by line, to ``print_fn`` (``emocircuits demo``
    passes ``print``; default: nothing); returns the evaluation result."""
    print_fn = print_fn or (lambda line: None)
    from circuits.runs.discover import discover
    from circuits.runs.evaluate import run_evaluation
    from circuits.steer.metrics import method_table, sweep_table

    t0 = time.perf_counter()
    summary = discover(  # the demo remakes the whole run: what other commands wrote there goes
        model, load_sev(), out, discover_cfg, settings=settings, judge=judge, progress=progress, replace=True
    )
    ag = summary["agreement"]
    print_fn(
        f"discovery done in {time.perf_counter() - t0:.0f} s; {agreement_line(ag)}; circuits {summary['circuits']}"
    )
    if summary.get("faithfulness"):
        from circuits.circuit.ablation_faithfulness import faithfulness_table

        print_fn(faithfulness_table(summary["faithfulness"]))
    result = run_evaluation(
        model, out, replace(eval_cfg, methods=METHODS, emotions=discover_cfg.emotions), judge=judge, progress=progress
    )
    print_fn(f"prompt: {settings.describe()}")
    if result.get("strength_sweep"):
        print_fn(sweep_table(result["strength_sweep"]))
    print_fn(method_table(result))
    for name, m in result["methods"].items():
        for ex in m["examples"][:examples]:
            print_fn(f"  [{name} -> {ex['emotion']}, judged {ex['judged']}] {ex['reply'][:160]!r}")
    print_fn(
        f"report: {out}/report.html, {Path(out) / EVALUATION_DIR / layout.REPORT_MD}  "
        f"({time.perf_counter() - t0:.0f} s in all)"
    )
    return result
