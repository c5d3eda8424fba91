"""The emotion atlas of the toy run: records tie back to the run's files, the circuit's per-layer write
equals the control-vector computation, cosines equal a direct computation, overlaps are Jaccard."""

from __future__ import annotations

import json
import shutil

import pytest
import torch


@pytest.fixture(scope="module")
def atlas_run(toy, toy_run, tmp_path_factory):
    from circuits.cli import main

    run = tmp_path_factory.mktemp("atlas") / "run"
    shutil.copytree(toy_run[0], run)
    assert main(["concepts", "--model", "toy", "--run", str(run)]) == 0
    assert main(["atlas", "--model", "toy", "--run", str(run)]) == 0
    return run, json.loads((run / "atlas.json").read_text())


def test_records_link_every_result_of_the_run(toy, atlas_run):
    from circuits.circuit import Circuit

    run, atlas = atlas_run
    summary = json.loads((run / "summary.json").read_text())
    assert atlas["provenance"]["model"]["fingerprint"] == toy.fingerprint
    assert atlas["provenance"]["dataset"]["sha256"] == summary["dataset"]["sha256"]
    assert set(atlas["emotions"]) == set(summary["circuits"])
    ev = json.loads((run / "directions_evidence.json").read_text())
    for e, r in atlas["emotions"].items():
        c = Circuit.load(run / r["circuit"]["file"])
        assert r["circuit"]["neurons"] == c.n_neurons and r["circuit"]["heads"] == c.n_heads
        assert r["circuit"]["faithfulness"]["faithfulness"] == c.faithfulness["faithfulness"]
        best = r["direction"]["best_layer"]
        assert r["direction"]["probe_accuracy"] == max(ev["probe_accuracy"]["mlp"])
        assert r["direction"]["null_probe_accuracy"] == ev["null"]["probe_accuracy"]["mlp"]["mean"][best]
        assert "direction_vs_concept" in r["agreement_at_best_layer"] and r["va"] is None
    page = (run / "atlas.html").read_text()
    assert all(e in page for e in atlas["emotions"]) and "Jaccard" in page


def test_agreement_numbers_equal_direct_computations(toy, atlas_run):
    from safetensors.torch import load_file

    from circuits.circuit import load_circuits
    from circuits.discovery.directions import Directions
    from circuits.interop.controlvector import circuit_residual_write
    from circuits.runs.atlas import circuit_layer_writes

    run, atlas = atlas_run
    dirs = Directions.load(run / "directions")
    ev = load_file(str(run / "emotion_vectors.safetensors"))["ev"]
    circuits = load_circuits(run / "circuits", model=toy)
    for i, e in enumerate(dirs.emotions):
        writes = circuit_layer_writes(circuits[e], toy)
        ref = circuit_residual_write(circuits[e], toy)
        for L, w in ref.items():
            torch.testing.assert_close(writes[L], w, atol=1e-6, rtol=1e-5)
        rows = atlas["agreement"]["per_layer"][e]
        for L in range(toy.arch.n_layers):
            want = torch.nn.functional.cosine_similarity(dirs.unit[1, L, i], ev[i, L], dim=0)
            assert rows["direction_vs_emotion_vector"][L] == pytest.approx(float(want), abs=1e-5)
            want = torch.nn.functional.cosine_similarity(dirs.unit[1, L, i], writes[L], dim=0)
            assert rows["direction_vs_circuit_write"][L] == pytest.approx(float(want), abs=1e-5)
    ov = atlas["agreement"]["overlap"]
    names = ov["emotions"]
    a, b = circuits[names[0]], circuits[names[1]]
    na = {(lc.layer, n) for lc in a.layers for n in lc.neurons}
    nb = {(lc.layer, n) for lc in b.layers for n in lc.neurons}
    assert ov["neurons"][0][1] == pytest.approx(len(na & nb) / len(na | nb))
    assert all(ov["heads"][k][k] == 1.0 for k in range(len(names)))


def test_va_coordinates_come_from_a_va_run_of_the_same_model(toy, atlas_run, tmp_path, capsys):
    """With --va the record holds the emotion's text centroid on the VA axes (the va run's projection),
    its rating, and the SEV direction projected on the same axes; axes of another model are refused,
    naming the file, and the atlas already written stays as it was."""
    from circuits.cli import main
    from circuits.discovery.directions import Directions
    from circuits.runs.valence_arousal import VAConfig, run_va
    from circuits.va.subspace import VAAxes

    run, _ = atlas_run
    va_dir = tmp_path / "va"
    va = run_va(toy, va_dir, VAConfig(alphas=(0.0,), steer_limit=1, random_seeds=1), progress=False)
    assert main(["atlas", "--model", "toy", "--run", str(run), "--va", str(va_dir)]) == 0
    assert "valence" in capsys.readouterr().out
    atlas = json.loads((run / "atlas.json").read_text())
    axes = VAAxes.load(va_dir / "axes")
    dirs = Directions.load(run / "directions")
    assert atlas["provenance"]["va_run"] == str(va_dir)
    for i, e in enumerate(dirs.emotions):
        r = atlas["emotions"][e]["va"]
        assert [r["valence"], r["arousal"]] == pytest.approx(va["projection"][e])
        assert r["rating"] == pytest.approx(va["ratings"][e]) and r["layer"] == axes.layer == va["layer"]
        want = axes.project(dirs.unit[1, axes.layer, i].float())
        assert [r["direction_valence"], r["direction_arousal"]] == pytest.approx(want.tolist(), abs=1e-6)
    before = (run / "atlas.json").read_bytes()
    meta = json.loads((va_dir / "axes.json").read_text())
    (va_dir / "axes.json").write_text(json.dumps({**meta, "fingerprint": "0123456789abcdef"}))
    assert main(["atlas", "--model", "toy", "--run", str(run), "--va", str(va_dir)]) == 2
    err = capsys.readouterr().err
    assert "axes.json" in err and "0123456789abcdef" in err
    assert (run / "atlas.json").read_bytes() == before
    assert main(["atlas", "--model", "toy", "--run", str(run), "--va", str(tmp_path / "nothing")]) == 2
    assert "--va expects the output directory" in capsys.readouterr().err
