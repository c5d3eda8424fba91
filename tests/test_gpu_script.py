"""benchmarks/gpu.py, the GPU job, checked on CPU with toy-size models of the same architectures (--tiny)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_runs_every_step_on_cpu(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--out", str(out), "--device", "cpu", "--tiny"]
        + ["--dtype", "float32", "--layers", "2", "--limit", "2", "--shapes", "llama-3.2-3b"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    res = json.loads((out / "gpu.json").read_text())
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:], res)
    shapes = ("llama-3.2-3b",)  # one shape here (the other differs only in its dimensions and architecture)
    assert list(res["steps"]) == [f"{step}_{s}" for s in shapes for step in ("build", "discovery", "generation")]
    assert all(s["ok"] and s["seconds"] >= 0 for s in res["steps"].values())
    for s in shapes:
        disc = res["steps"][f"discovery_{s}"]["result"]
        assert disc["arch"]["n_layers"] == 2 and disc["rows"] > 0
        assert disc["heads_speedup"] > 0 and disc["store_overhead_vs_bridge"] > 0
        assert disc["probe_max_acc_diff"] <= 0.01  # the fast probe agrees with its reference
        gen = res["steps"][f"generation_{s}"]["result"]["generation"]
        assert gen["fast_steered_over_plain_hf_batched"] > 0 and gen["new_tokens"] == 8
        assert not (out / "models" / s).exists()  # each model's disk is given back
    assert res["environment"]["device"] == "cpu"
