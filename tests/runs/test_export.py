"""``export-gguf`` and ``export-graph`` on a small discovery run of a tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.core.sev import load_sev
from circuits.interop.controlvector import ControlVector, circuit_residual_write
from circuits.runs.discover import DiscoverConfig, discover


@pytest.fixture(scope="module")
def small_run(qwen_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = DiscoverConfig(
        limit=2,
        sweep_ks=(1,),
        sweep_seeds=1,
        sweep_rows=1,
        reference_head_rows=1,
        influence_rows=2,
        alphas=(1.0,),
        generation_rows=0,
        figures=False,
        reference_budget_s=0,
    )
    discover(qwen_tiny, load_sev(), out, cfg, progress=False)
    return out


def test_export_gguf_every_source_and_check(small_run, qwen_tiny, tiny_dirs, tmp_path, capsys):
    from circuits.circuit import Circuit
    from circuits.cli import main

    model = ["--model", str(tiny_dirs["qwen2"])]
    for source, extra in [("direction", ["--layers", "1"]), ("emotion_vector", []), ("circuit", [])]:
        out = tmp_path / f"{source}.gguf"
        assert (
            main(
                [
                    "export-gguf",
                    *model,
                    "--run",
                    str(small_run),
                    "--source",
                    source,
                    "--emotion",
                    "anger",
                    "--strength",
                    "2",
                    "--out",
                    str(out),
                    *extra,
                ]
            )
            == 0
        )
        cv = ControlVector.load(out)
        assert cv.meta["source"] == source and cv.meta["emotion"] == "anger" and cv.model_hint == "qwen2"
        assert list(cv.vectors) == [1]  # the 2-layer model: block 1 only (llama.cpp cannot steer block 0)
    circuit = Circuit.load(small_run / "circuits" / "anger.json", model=qwen_tiny)
    want = circuit_residual_write(circuit, qwen_tiny, 2.0)[1]
    torch.testing.assert_close(ControlVector.load(tmp_path / "circuit.gguf").vectors[1], want)
    capsys.readouterr()
    assert (
        main(
            [
                "export-gguf",
                *model,
                "--run",
                str(small_run),
                "--source",
                "circuit",
                "--emotion",
                "anger",
                "--strength",
                "2",
                "--out",
                str(tmp_path / "c.gguf"),
                "--check",
                "1",
                "--judge",
                "lexicon",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "workbench + file" in printed and "workbench, circuit modulation" in printed
    res = json.loads((tmp_path / "c.gguf.check.json").read_text())
    assert res["n"] == 3 and set(res["conditions"]) >= {
        "workbench, no edit",
        "workbench + file",
        "workbench, circuit modulation",
    }
    s = {k: v["emotion_score"] for k, v in res["conditions"].items()}
    assert s["workbench + file"] != s["workbench, no edit"]  # the file moves the model


def test_export_errors_are_one_line(small_run, tiny_dirs, tmp_path, capsys):
    from circuits.cli import main

    rc = main(
        [
            "export-gguf",
            "--model",
            str(tiny_dirs["qwen2"]),
            "--run",
            str(small_run),
            "--source",
            "va",
            "--strength",
            "1",
            "--out",
            str(tmp_path / "x.gguf"),
        ]
    )
    assert rc == 2 and "needs the VA run directory" in capsys.readouterr().err
    assert not (tmp_path / "x.gguf").exists()


def test_export_graph_writes_three_files_per_circuit(small_run, tiny_dirs, capsys):
    from circuits.cli import main

    assert (
        main(
            ["export-graph", "--model", str(tiny_dirs["qwen2"]), "--run", str(small_run), "--emotions", "anger", "fear"]
        )
        == 0
    )
    folder = small_run / "circuits"
    for e in ("anger", "fear"):
        assert (folder / f"{e}.graph.json").is_file() and (folder / f"{e}.html").is_file()
        g = json.loads((folder / f"{e}.nodelink.json").read_text())
        assert g["graph"]["emotion"] == e and all("label" in n for n in g["nodes"])
