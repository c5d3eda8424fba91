"""Is the first model a process loads slower than the second? And why?

    .venv/bin/python benchmarks/warmup.py --dtype bfloat16             # one fresh process, two loads
    .venv/bin/python benchmarks/warmup.py --dtype bfloat16 --experiment malloc

In one fresh process, loads the model (``circuits.load_model``, as every command does) ``--loads``
times; after each load runs ``--forwards`` timed forward passes through the TransformerBridge (what
the activation store runs) of the same ``--batch`` x ``--tokens`` token ids, and records, per pass,
the wall time and the minor and major page faults of the process (``getrusage``). The previous model
is deleted before the next load (``--keep`` keeps it alive). Prints the times and the ratio
first load / second load of the first forward pass.

``--experiment malloc`` runs that measurement twice, each in a fresh child process: once as it is and
once with glibc's allocator told to keep freed memory (``MALLOC_MMAP_THRESHOLD_`` = 32 MiB, the
largest glibc takes, ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` = 1 GiB). The hypothesis it
tests: the first passes are slow because every large activation buffer is a fresh ``mmap`` whose pages
are faulted in and zeroed on first touch, until glibc's dynamic mmap threshold has grown; if so, the
tuned allocator removes most of the first pass's page faults and its extra time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(1024**3),
    "MALLOC_TOP_PAD_": str(1024**3),
}


def faults() -> tuple[int, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_minflt, r.ru_majflt


def measure(args: argparse.Namespace) -> dict:
    t_import = time.perf_counter()
    import torch

    from circuits.core.model import load_model

    torch.set_num_threads(args.threads)
    import_s = time.perf_counter() - t_import
    g = torch.Generator().manual_seed(0)
    loads = []
    keep = []
    for _ in range(args.loads):
        t0 = time.perf_counter()
        m = load_model(args.model, dtype=args.dtype)
        load_s = time.perf_counter() - t0
        ids = torch.randint(100, int(m.arch.d_vocab), (args.batch, args.tokens), generator=g)
        passes = []
        for _ in range(args.forwards):
            f0 = faults()
            t0 = time.perf_counter()
            with torch.inference_mode():
                m.bridge(ids)
            dt = time.perf_counter() - t0
            f1 = faults()
            passes.append({"s": round(dt, 3), "minflt": f1[0] - f0[0], "majflt": f1[1] - f0[1]})
        loads.append({"load_s": round(load_s, 2), "forwards": passes})
        if args.keep:
            keep.append(m)
        del m
        gc.collect()
    first, second = loads[0]["forwards"][0]["s"], (loads[1]["forwards"][0]["s"] if len(loads) > 1 else None)
    return {
        "model": args.model,
        "dtype": args.dtype,
        "threads": args.threads,
        "batch": args.batch,
        "tokens": args.tokens,
        "keep": args.keep,
        "malloc_env": {k: os.environ[k] for k in MALLOC_ENV if k in os.environ},
        "import_s": round(import_s, 2),
        "loads": loads,
        "ratio_first_load_over_second_load": round(first / second, 2) if second else None,
        "ratio_first_over_second_pass_of_load_1": (
            round(first / loads[0]["forwards"][1]["s"], 2) if len(loads[0]["forwards"]) > 1 else None
        ),
    }


def show(r: dict) -> None:
    env = " (tuned malloc)" if r["malloc_env"] else ""
    print(f"{r['model']} {r['dtype']}, {r['threads']} threads, {r['batch']} x {r['tokens']} tokens{env}")
    for i, ld in enumerate(r["loads"], 1):
        passes = ", ".join(f"{p['s']:.2f} s ({p['minflt']} minor / {p['majflt']} major faults)" for p in ld["forwards"])
        print(f"  load {i}: {ld['load_s']:.1f} s; forwards: {passes}")
    print(
        f"  first pass: load 1 / load 2 = {r['ratio_first_load_over_second_load']}x; "
        f"load 1 pass 1 / pass 2 = {r['ratio_first_over_second_pass_of_load_1']}x"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--loads", type=int, default=2)
    p.add_argument("--forwards", type=int, default=2, help="timed forward passes after each load")
    p.add_argument("--keep", action="store_true", help="keep every loaded model alive")
    p.add_argument("--experiment", choices=("none", "malloc"), default="none")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.experiment == "none":
        r = measure(args)
        if args.child:
            print("RESULT " + json.dumps(r))
            return 0
        show(r)
        results = [r]
    else:
        base = [sys.executable, __file__, "--child", "--model", args.model, "--dtype", args.dtype,
                "--threads", str(args.threads), "--batch", str(args.batch), "--tokens", str(args.tokens),
                "--loads", str(args.loads), "--forwards", str(args.forwards)] + (["--keep"] if args.keep else [])  # fmt: skip
        results = []
        for env in ({}, MALLOC_ENV):
            e = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
            out = subprocess.run(base, env={**e, **env}, capture_output=True, text=True, check=True).stdout
            r = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])
            show(r)
            results.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
