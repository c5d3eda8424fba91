"""One entry point for a GPU machine: discover + evaluate on SmolLM2-135M-Instruct in full, then the
7B-shaped random benchmark, writing one JSON of timings and results.

    python benchmarks/gpu.py --out runs/gpu                          # CUDA: the whole job, ~8 minutes
    python benchmarks/gpu.py --out /tmp/gpu --device cpu --tiny      # CPU check of the script, seconds

Steps (each timed; the JSON is rewritten atomically after every step, so a run cut short by a time
limit still leaves what it finished):
  environment   torch / transformers / CUDA versions and the device name
  discover      the full train split with elicitation, every reference measure at its default size
  evaluate      the test split, five methods, ``--positions paper`` and ``last``, strength sweeps on the
                train split for direction, Emotion Vector and circuit steering
  bench_7b      benchmarks/bench_discovery.py on a random model with Qwen2.5-7B layer shapes
``--tiny`` swaps in a tiny random Llama and 2-scenario subsets, to test the script without a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def environment(device: str) -> dict[str, Any]:
    import torch
    import transformers

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
        "cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder (gpu.json, the discovery run)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=None, help="train scenarios for discovery (default all)")
    ap.add_argument("--eval-limit", type=int, default=None, help="test scenarios for evaluation (default all)")
    ap.add_argument("--bench-layers", type=int, default=4, help="layers of the 7B-shaped model")
    ap.add_argument("--tiny", action="store_true", help="tiny random model and subsets (CPU check)")
    args = ap.parse_args(argv)

    import torch

    from circuits.core.artifacts import write_json_atomic
    from circuits.core.model import load_model
    from circuits.core.sev import load_sev, recommended_prompts
    from circuits.judges.base import make_judge
    from circuits.runs.discover import DiscoverConfig, discover
    from circuits.runs.evaluate import run_evaluation
    from circuits.steer.metrics import EvalConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"environment": environment(args.device), "args": vars(args), "steps": {}}
    path = out / "gpu.json"

    def step(name: str, fn):
        t = time.perf_counter()
        try:
            value = fn()
            result["steps"][name] = {"ok": True, "seconds": round(time.perf_counter() - t, 2), "result": value}
        except Exception as err:  # a failed step is recorded and the next one still runs
            result["steps"][name] = {
                "ok": False,
                "seconds": round(time.perf_counter() - t, 2),
                "error": f"{type(err).__name__}: {err}",
            }
        write_json_atomic(path, result)
        print(f"{name}: {result['steps'][name]['seconds']} s, ok={result['steps'][name]['ok']}", flush=True)

    model_name = args.model
    if args.tiny:
        from circuits.toy.tiny import build_tiny_model

        model_name = str(build_tiny_model("llama", out / "tiny-llama", seed=0))
    limit = args.limit if args.limit is not None else (2 if args.tiny else None)
    eval_limit = args.eval_limit if args.eval_limit is not None else (1 if args.tiny else None)
    state: dict[str, Any] = {}

    def load():
        state["model"] = load_model(model_name, device=args.device, dtype=args.dtype)
        return {"name": state["model"].name, "arch": state["model"].arch.to_dict()}

    step("load", load)
    settings = recommended_prompts(args.model)
    run_dir = out / "discover"
    tiny = (
        dict(
            reference_head_rows=2,
            influence_rows=4,
            sweep_ks=(2,),
            sweep_seeds=1,
            sweep_rows=2,
            generation_rows=0,
            alphas=(1.0,),
            figures=False,
            reference_budget_s=0,
            null_seeds=1,
            faithfulness_rows=2,
            faithfulness_seeds=1,
            faithfulness_judge_rows=0,
        )
        if args.tiny
        else {}
    )
    dcfg = DiscoverConfig(limit=limit, elicitation=not args.tiny, **tiny)

    def run_discover():
        s = discover(state["model"], load_sev(), run_dir, dcfg, settings=settings, progress=False)
        return {k: s[k] for k in ("rows", "agreement", "directions", "circuits", "ablation_generations", "timings_s")}

    step("discover", run_discover)
    grids = dict(
        direction_alphas=(2.0, 4.0, 8.0), ev_alphas=(1.0, 2.0, 4.0), circuit_lambdas=(1.0, 2.0, 4.0), sweep_limit=4
    )
    if args.tiny:  # every code path once, with short replies
        grids = dict(
            direction_alphas=(4.0,),
            ev_alphas=(2.0,),
            circuit_lambdas=(1.0,),
            sweep_limit=1,
            max_new_tokens=6,
            min_new_tokens=1,
            emotions=("anger", "fear"),
        )
    # the CPU check judges with the lexicon (the learned judge would load SmolLM2 to read two replies)
    judge = make_judge("lexicon") if args.tiny else None
    for positions in ("paper", "last"):

        def run_eval(positions=positions):
            cfg = EvalConfig(limit=eval_limit, positions=positions, **grids)  # type: ignore[arg-type]
            r = run_evaluation(
                state["model"], run_dir, cfg, out=out / f"evaluate-{positions}", judge=judge, progress=False
            )
            table = {
                m: {k: v[k] for k in ("accuracy", "perplexity", "per_emotion", "n")} for m, v in r["methods"].items()
            }
            chosen = {m: t["chosen"] for m, t in r.get("strength_sweep", {}).get("methods", {}).items()}
            return {"methods": table, "chosen_strengths": chosen}

        step(f"evaluate_{positions}", run_eval)
    state.pop("model", None)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    def bench():
        js = out / "bench_7b.json"
        cmd = [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_discovery.py"),
            "--device",
            args.device,
            "--json",
            str(js),
        ]
        if args.tiny:  # the script's own path, on the tiny model (a 7B-shaped layer is too big for a CPU check)
            cmd += [
                "--model",
                model_name,
                "--limit",
                "2",
                "--ref-rows",
                "1",
                "--influence-rows",
                "2",
                "--emotions",
                "anger",
                "fear",
            ]
        else:
            cmd += ["--qwen7b-shape", "--layers", str(args.bench_layers), "--limit", "4", "--dtype", "bfloat16"]
        subprocess.run(cmd, check=True, cwd=ROOT)
        return json.loads(js.read_text())

    step("bench_7b", bench)
    print(f"wrote {path}")
    return 0 if all(s["ok"] for s in result["steps"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
