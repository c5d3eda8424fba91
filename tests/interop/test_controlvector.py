"""Control vectors in llama.cpp's GGUF layout: written, read by the gguf package's own reader, read back
into interventions; a circuit's residual write equals what its edits add to the residual stream; and,
where llama-cpp-python is installed, llama.cpp adds direction.L where the workbench's resid_post L is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuits.core.hooks import Intervention, Read, run_forward
from circuits.interop.controlvector import ControlVector, ControlVectorError, circuit_residual_write, from_directions


def _vectors(d=16, layers=(1, 3)):
    g = torch.Generator().manual_seed(0)
    return {L: torch.randn(d, generator=g) for L in layers}


def test_round_trip_and_the_layout_llama_cpp_reads(tmp_path):
    import gguf

    cv = ControlVector(_vectors(), "llama", {"emotion": "anger", "strength": "4"})
    path = cv.save(tmp_path / "anger.gguf")
    back = ControlVector.load(path)
    assert back.model_hint == "llama" and back.meta == {"emotion": "anger", "strength": "4"}
    assert set(back.vectors) == {1, 3} and all(torch.equal(back.vectors[L], cv.vectors[L]) for L in (1, 3))
    r = gguf.GGUFReader(str(path))  # the layout, read by the reference reader
    fields = {name: f.contents() for name, f in r.fields.items()}
    assert fields["general.architecture"] == "controlvector"
    assert fields["controlvector.model_hint"] == "llama" and fields["controlvector.layer_count"] == 2
    assert sorted(t.name for t in r.tensors) == ["direction.1", "direction.3"]
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [16] for t in r.tensors)
    buf = back.llama_cpp_buffer(n_layers=5, scale=2.0)  # layers 1..4, n_embd each
    assert buf.shape == (4 * 16,)
    np.testing.assert_array_equal(buf[2 * 16 : 3 * 16], 2.0 * cv.vectors[3].numpy())  # layer 3 at row 3 - 1
    assert not buf[16:32].any()


def test_bad_files_and_layers_are_refused(tmp_path, qwen_tiny):
    import gguf

    with pytest.raises(ControlVectorError, match="block 0"):
        ControlVector({0: torch.ones(4)}, "llama")
    w = gguf.GGUFWriter(str(tmp_path / "model.gguf"), "llama")
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    with pytest.raises(ControlVectorError, match=r"model\.gguf.*'llama', expected 'controlvector'"):
        ControlVector.load(tmp_path / "model.gguf")
    good = ControlVector(_vectors(), "llama").save(tmp_path / "good.gguf")
    (tmp_path / "cut.gguf").write_bytes(good.read_bytes()[:40])
    with pytest.raises(ControlVectorError, match=r"cut\.gguf"):
        ControlVector.load(tmp_path / "cut.gguf")
    with pytest.raises(ControlVectorError, match="d_model is 64"):
        ControlVector.load(good).interventions(qwen_tiny)
    with pytest.raises(ControlVectorError, match=r"layers \[5\] do not exist"):
        ControlVector({5: torch.ones(64)}, "qwen2").interventions(qwen_tiny)


def test_a_file_steers_the_workbench_as_resid_post_edits(tmp_path, qwen_tiny, run_store):
    m = qwen_tiny
    store, dirs = run_store
    from circuits.discovery.influence import residual_sigma

    sigma = residual_sigma(store)
    cv = from_directions(m, dirs, "fear", [1], 3.0, sigma)
    assert cv.model_hint == "qwen2" and cv.meta["source"] == "direction" and cv.meta["fingerprint"] == m.fingerprint
    torch.testing.assert_close(cv.vectors[1], 3.0 * float(sigma[1, 1]) * dirs.get("mlp", 1, "fear"))
    ivs = ControlVector.load(cv.save(tmp_path / "fear.gguf")).interventions(m, scale=0.5)
    assert [(iv.site, iv.layer, iv.op, iv.positions) for iv in ivs] == [("resid_post", 1, "add", "all")]
    ids, mask = m.pad_left([m.chat_ids(None, "I took the bus.")])
    base = run_forward(m, ids, mask, reads=[Read("resid_post", 1)])
    moved = run_forward(m, ids, mask, ivs, reads=[Read("resid_post", 1)])
    torch.testing.assert_close(
        moved[Read("resid_post", 1)] - base[Read("resid_post", 1)], 0.5 * cv.vectors[1][None], atol=1e-5, rtol=1e-5
    )


def test_circuit_residual_write_is_what_its_edits_add(qwen_tiny):
    """Exact: with a layer's circuit edits (last token), attn_out and mlp_out move by the write's two parts."""
    from circuits.circuit import assemble_circuit
    from circuits.steer.methods import circuit_modulation

    m = qwen_tiny
    a = m.arch
    g = torch.Generator().manual_seed(1)
    c = assemble_circuit(
        "anger",
        influence_attn=torch.ones(a.n_layers),
        influence_mlp=torch.ones(a.n_layers),
        neuron_scores=torch.randn(a.n_layers, a.d_mlp, generator=g),
        head_scores=torch.randn(a.n_layers, a.n_heads, generator=g),
        delta_mu_mlp=torch.randn(a.n_layers, a.d_mlp, generator=g),
        delta_mu_heads=torch.randn(a.n_layers, a.n_heads, a.d_head, generator=g),
        model_info={"name": m.name, "fingerprint": m.fingerprint, "arch": a},
    )
    writes = circuit_residual_write(c, m, lam=2.0)
    ids, mask = m.pad_left([m.chat_ids(None, "I took the bus.")])
    for lc in c.layers:
        L = lc.layer
        edits = [iv for iv in circuit_modulation(c, m, lam=2.0, positions="last") if iv.layer == L]
        reads = [Read("attn_out", L), Read("mlp_out", L)]
        base = run_forward(m, ids, mask, reads=reads)
        # the MLP's own input moves with the heads' write: measure the two parts separately
        heads_only = run_forward(m, ids, mask, [iv for iv in edits if iv.site == "heads"], reads)
        neurons_only = run_forward(m, ids, mask, [iv for iv in edits if iv.site == "neurons"], reads)
        moved = (heads_only[reads[0]] - base[reads[0]]) + (neurons_only[reads[1]] - base[reads[1]])
        torch.testing.assert_close(moved[0], writes[L], atol=1e-4, rtol=1e-4)
        assert writes[L].norm() > 0.1


def test_llama_cpp_adds_direction_L_where_the_workbench_adds_resid_post_L(smollm2):
    """The layer-index convention, pinned in llama.cpp itself (llama-cpp-python, optional)."""
    pytest.importorskip("llama_cpp")
    from circuits.core.generate import steered
    from circuits.core.gguf import packaged_gguf
    from circuits.interop.llamacpp import LlamaCpp

    m = smollm2
    ids = m.chat_ids(None, "My train was late again this morning.")

    def hf_logits(ivs):
        i, mask = m.pad_left([ids])
        with torch.no_grad(), steered(m, ivs) as hf:
            return hf(input_ids=i, attention_mask=mask, logits_to_keep=1, use_cache=False).logits[0, -1].float().numpy()

    lc = LlamaCpp(packaged_gguf("smollm2-135m"), n_threads=1)
    try:
        h0, c0 = hf_logits([]), lc.last_logits(ids)
        assert np.corrcoef(h0, c0)[0, 1] > 0.99 and h0.argmax() == c0.argmax()  # same model, Q4_1 vs dequantized
        v = torch.randn(m.arch.d_model, generator=torch.Generator().manual_seed(0))
        v = 30 * v / v.norm()
        k = 12
        lc.set_control_vector(ControlVector({k: v}, "llama"))
        shift = lc.last_logits(ids) - c0
        lc.set_control_vector(None)
        np.testing.assert_allclose(lc.last_logits(ids), c0, atol=1e-4)  # cleared
        corr = {
            L: np.corrcoef(shift, hf_logits([Intervention("resid_post", L, "add", vector=v)]) - h0)[0, 1]
            for L in (k - 1, k, k + 1)
        }
        assert corr[k] > 0.97 and corr[k] > max(corr[k - 1], corr[k + 1]) + 0.1, corr
    finally:
        lc.close()


def test_va_axis_and_emotion_vector_sources(tmp_path, qwen_tiny):
    from circuits.interop.controlvector import from_emotion_vectors, from_va_axis
    from circuits.va.subspace import VAAxes

    m = qwen_tiny
    d = m.arch.d_model
    g = torch.Generator().manual_seed(4)
    val, aro = torch.randn(d, generator=g), torch.randn(d, generator=g)
    axes = VAAxes(
        layer=1,
        valence=val / val.norm(),
        arousal=aro / aro.norm(),
        n_components=2,
        ridge_alpha={},
        r2={},
        emotions=["anger", "fear"],
    )
    axes.save(tmp_path / "axes")
    cv = from_va_axis(m, VAAxes.load(tmp_path / "axes"), "arousal", alpha=-2.0, sigma=3.0)
    assert list(cv.vectors) == [1] and cv.meta["source"] == "va_arousal"
    torch.testing.assert_close(cv.vectors[1], -6.0 * axes.arousal)
    with pytest.raises(ValueError, match="valence' or 'arousal"):
        from_va_axis(m, axes, "dominance", 1.0, 1.0)
    ev = torch.randn(2, m.arch.n_layers, d, generator=g)
    cv = from_emotion_vectors(m, ev, ["anger", "fear"], "fear", 2.0)
    assert list(cv.vectors) == list(range(1, m.arch.n_layers))  # EV_0 dropped: llama.cpp starts at block 1
    torch.testing.assert_close(cv.vectors[1], 2.0 * ev[1, 1])


def _raw_cvec(path, vectors, meta=None):
    """A control-vector file written by hand (no workbench checks), as another tool could write it."""
    import gguf

    w = gguf.GGUFWriter(str(path), "controlvector")
    w.add_string("controlvector.model_hint", "qwen2")
    w.add_uint32("controlvector.layer_count", len(vectors))
    for k, v in (meta or {}).items():
        w.add_string("emocircuits." + k, v)
    for layer, v in vectors.items():
        w.add_tensor(f"direction.{layer}", np.asarray(v, dtype=np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_directions_are_refused_on_load_and_in_memory(tmp_path, bad):
    v = np.ones(64, dtype=np.float32)
    v[3] = bad
    path = _raw_cvec(tmp_path / "nan.gguf", {1: v})
    with pytest.raises(ControlVectorError) as err:
        ControlVector.load(path)
    assert str(err.value) == f"{path}: tensor 'direction.1': holds NaN or infinite values"
    with pytest.raises(ControlVectorError, match=r"layer\(s\) \[2\] hold NaN or infinite values"):
        ControlVector({2: torch.tensor(v)}, "llama")
    with pytest.raises(ControlVectorError, match="layer"):  # 1e300 overflows float32: inf
        ControlVector({2: 1e300 * torch.ones(4, dtype=torch.float64)}, "llama")


def test_another_models_fingerprint_is_refused_when_a_model_is_given(tmp_path, qwen_tiny):
    other = _raw_cvec(tmp_path / "other.gguf", {1: np.ones(64)}, {"model": "smollm2-135m", "fingerprint": "0" * 16})
    assert ControlVector.load(other).vectors[1].shape == (64,)  # without a model: read as it is
    with pytest.raises(ControlVectorError) as err:
        ControlVector.load(other, model=qwen_tiny)
    assert str(err.value).startswith(f"{other}: the control vector was made on 'smollm2-135m'")
    with pytest.raises(ControlVectorError, match="fingerprint 0000000000000000"):
        ControlVector.load(other).interventions(qwen_tiny)
    mine = {"model": "tiny", "fingerprint": str(qwen_tiny.fingerprint)}
    same = _raw_cvec(tmp_path / "same.gguf", {1: np.ones(64)}, mine)
    assert len(ControlVector.load(same, model=qwen_tiny).interventions(qwen_tiny)) == 1
    repeng = _raw_cvec(tmp_path / "repeng.gguf", {1: np.ones(64)})  # no fingerprint: checked by size only
    assert ControlVector.load(repeng, model=qwen_tiny).d_model == 64


def test_control_vector_error_is_one_readable_line(tmp_path):
    err = ControlVectorError(tmp_path / "x.gguf", "general.architecture is 'llama'")
    assert str(err) == f"{tmp_path / 'x.gguf'}: general.architecture is 'llama'" and err.args == (str(err),)
    assert str(ControlVectorError(None, "no layer")) == "no layer"
    import pickle

    assert str(pickle.loads(pickle.dumps(err))) == str(err)
    with pytest.raises(ControlVectorError) as missing:
        ControlVector.load(tmp_path / "none.gguf")
    assert str(missing.value) == f"{tmp_path / 'none.gguf'}: no such control-vector GGUF file"
