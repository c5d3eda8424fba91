"""benchmarks/gpu.py, the GPU job, checked on CPU with a tiny model (--tiny)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_runs_every_step_on_cpu(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--out", str(out), "--device", "cpu", "--tiny"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    res = json.loads((out / "gpu.json").read_text())
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:], res)
    assert list(res["steps"]) == ["load", "discover", "evaluate_paper", "evaluate_last", "bench_7b"]
    assert all(s["ok"] and s["seconds"] >= 0 for s in res["steps"].values())
    ev = res["steps"]["evaluate_paper"]["result"]
    assert set(ev["methods"]) == {"prompting", "neutral", "direction", "emotion_vector", "circuit"}
    assert set(ev["chosen_strengths"]) == {"direction", "emotion_vector", "circuit"}
    assert res["steps"]["bench_7b"]["result"]["heads_speedup"] > 0
    assert res["environment"]["device"] == "cpu"
