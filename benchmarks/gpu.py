"""One entry point for a GPU machine: the workbench's costs on random-weight models of real shapes,
in bfloat16, writing one JSON of timings and results after every step.

    python benchmarks/gpu.py --out runs/gpu                          # CUDA: both shapes, under 8 minutes
    python benchmarks/gpu.py --out /tmp/gpu --device cpu --tiny      # CPU check of the script, about a minute

A lent GPU machine downloads nothing, so the models are random-init with the layer dimensions and
vocabulary of Llama-3.2-3B-Instruct and Qwen2.5-7B-Instruct (``bench_discovery.SHAPES``), cut to
``--layers`` layers (the costs below are per layer and add up over depth). Steps, per shape (each timed;
the JSON is rewritten atomically after every step, so a run cut short by a time limit still leaves
what it finished; a failed step is recorded and the next one runs):
  environment         torch / transformers / CUDA versions and the device name
  build_SHAPE         the random model, saved in the benchmark dtype
  discovery_SHAPE     benchmarks/bench_discovery.py on it: store throughput against a bare forward,
                      the one-pass head and influence scores against their references, and the
                      second-step rows (probe, nulls, gradient, sweep)
  generation_SHAPE    benchmarks/bench_speed.py --generation-only on it: steered against plain
                      generation, batched and one prompt at a time
``--tiny`` swaps in the same architectures at toy size, to test the script without a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

REAL_SHAPES = ("llama-3.2-3b", "qwen2.5-7b")
TINY_SHAPES = {"llama-3.2-3b": "tiny-llama", "qwen2.5-7b": "tiny-qwen2"}


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
    ap.add_argument("--out", required=True, help="output folder (gpu.json and each script's JSON)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--shapes", nargs="+", choices=REAL_SHAPES, default=list(REAL_SHAPES))
    ap.add_argument("--layers", type=int, default=4, help="layers of each random model")
    ap.add_argument("--limit", type=int, default=4, help="SEV scenarios of the store (6 emotions + neutral each)")
    ap.add_argument("--tiny", action="store_true", help="toy-size models of the same architectures (CPU check)")
    args = ap.parse_args(argv)

    import torch
    from bench_discovery import shaped_model_dir

    from circuits.core.artifacts import write_json_atomic

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

    def script(name: str, shape: str, model_dir: Path, extra: list[str]) -> dict[str, Any]:
        """``benchmarks/NAME.py`` on the model of ``shape``, its JSON kept as ``NAME_SHAPE.json``."""
        js = out / f"{name}_{shape}.json"
        cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--model", str(model_dir)]
        cmd += ["--device", args.device, "--dtype", args.dtype, "--json", str(js), *extra]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:3])} exited {proc.returncode}: {proc.stderr.strip()[-1500:]}")
        return json.loads(js.read_text())

    dtype = getattr(torch, args.dtype)
    for shape in args.shapes:
        built = TINY_SHAPES[shape] if args.tiny else shape
        model_dir = out / "models" / shape

        def build(built=built, model_dir=model_dir):
            shutil.rmtree(model_dir, ignore_errors=True)
            shaped_model_dir(built, model_dir, args.layers, dtype=dtype)
            return {"shape": built, "layers": args.layers, "bytes": sum(f.stat().st_size for f in model_dir.iterdir())}

        step(f"build_{shape}", build)
        small = ["--ref-rows", "1", "--influence-rows", "2", "--null-seeds", "1"] if args.tiny else []
        step(
            f"discovery_{shape}",
            lambda model_dir=model_dir, shape=shape: script(
                "bench_discovery", shape, model_dir, ["--limit", str(args.limit), "--sweep-layers", "1", *small]
            ),
        )
        gen = ["--batch", "4", "--single", "1", "--new-tokens", "8", "--repeats", "1"] if args.tiny else []
        step(
            f"generation_{shape}",
            lambda model_dir=model_dir, shape=shape: script(
                "bench_speed", shape, model_dir, ["--generation-only", *gen]
            ),
        )
        shutil.rmtree(model_dir, ignore_errors=True)  # the next shape's disk
    print(f"wrote {path}")
    return 0 if all(s["ok"] for s in result["steps"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
