"""Interventions as data turned into hooks: every site and op changes the output as specified."""

from __future__ import annotations

import pytest
import torch

from circuits.core.hooks import Intervention, Read, make_hooks, masked_mean, run_forward
from circuits.discovery.store import last_token_activations


def test_interventions_change_outputs_as_specified(qwen_tiny):
    m = qwen_tiny
    prompt = [m.chat_ids("Always reply in fear.", "I took the bus.")]
    base = last_token_activations(m, prompt)
    zero = Intervention("neurons", 1, "set", (3, 5), positions="last")
    got = last_token_activations(m, prompt, [zero])
    assert got["mlp_post"][0, 1, [3, 5]].abs().max() == 0
    assert not torch.allclose(got["resid_post"][0, 1], base["resid_post"][0, 1])
    torch.testing.assert_close(got["resid_post"][0, 0], base["resid_post"][0, 0])  # earlier layer untouched
    vec = torch.randn(m.arch.d_model)
    add = Intervention("resid_mid", 0, "add", vector=vec, factor=2.0, positions="last")
    got = last_token_activations(m, prompt, [add])
    torch.testing.assert_close(got["resid_mid"][0, 0], base["resid_mid"][0, 0] + 2 * vec, atol=1e-5, rtol=1e-5)
    heads = Intervention("heads", 0, "scale", (1,), factor=0.0, positions="all")
    got = last_token_activations(m, prompt, [heads])
    assert got["z"][0, 0, 1].abs().max() == 0
    again = Intervention.from_dict(add.to_dict())
    assert again == add and torch.equal(again.vector, vec)
    with pytest.raises(ValueError, match="out of range"):
        make_hooks(m, [Intervention("heads", 0, "set", (99,))])


def test_masked_mean_known_answer():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[7.0, 8.0], [9.0, 10.0], [11.0, 12.0]]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([[4.0, 5.0], [9.0, 10.0]]))


def test_reads_capture_what_a_plain_capture_sees(qwen_tiny):
    """Every read position against a capture written by hand on the same left-padded batch."""
    m = qwen_tiny
    ids, mask = m.pad_left([m.chat_ids("Always reply in fear.", "I took the bus."), m.chat_ids(None, "Hi.")])
    seen = {}

    def spy(name):
        def fn(x, hook):
            seen[name] = x.detach().float().clone()
            return x

        return fn

    names = [m.hooks.resid_post(1), m.hooks.attn_out(0), m.hooks.final_scale]
    with torch.no_grad(), m.bridge.hooks(fwd_hooks=[(n, spy(n)) for n in names]):
        m.hf_model(input_ids=ids, attention_mask=mask, use_cache=False)
    reads = [
        Read("resid_post", 1),
        Read("resid_post", 1, positions="all"),
        Read("attn_out", 0, positions="mean"),
        Read("final_scale"),
    ]
    got = run_forward(m, ids, mask, reads=reads)
    full = seen[m.hooks.resid_post(1)]
    torch.testing.assert_close(got[reads[0]], full[:, -1])
    torch.testing.assert_close(got[reads[1]], full)
    att = seen[m.hooks.attn_out(0)]
    want = torch.stack([att[i, mask[i].bool()].mean(0) for i in range(2)])
    torch.testing.assert_close(got[reads[2]], want, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got[reads[3]], seen[m.hooks.final_scale][:, -1])
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in got.values())


def test_reads_see_the_edits_and_stop_ends_the_pass(qwen_tiny):
    m = qwen_tiny
    ids, mask = m.pad_left([m.chat_ids(None, "I took the bus.")])
    vec = torch.randn(m.arch.d_model)
    add = Intervention("resid_mid", 0, "add", vector=vec, positions="last")
    before, after = Read("resid_mid", 0), Read("resid_post", 1)
    base = run_forward(m, ids, mask, reads=[before, after])
    moved = run_forward(m, ids, mask, [add], [before, after])
    torch.testing.assert_close(moved[before], base[before] + vec, atol=1e-5, rtol=1e-5)  # read after the edit
    stopped = run_forward(m, ids, mask, reads=[Read("resid_mid", 0, stop=True), after])
    assert set(stopped) == {Read("resid_mid", 0, stop=True)}  # nothing after the stop ran
    graph = run_forward(m, ids, mask, reads=[Read("final_resid", keep_graph=True)], grad=True)
    assert next(iter(graph.values())).requires_grad


def test_read_validation():
    with pytest.raises(ValueError, match="Read.site"):
        Read("logits", 0)
    with pytest.raises(ValueError, match="Read.positions"):
        Read("resid_post", 0, positions="first")
    with pytest.raises(ValueError, match="layer must be None"):
        Read("final_scale", 3)
    with pytest.raises(ValueError, match="layer must be given"):
        Read("z")


def test_strengths_are_checked_in_the_dtype_the_edit_runs_in():
    """1e5 is a fine float32 factor but overflows float16; 1e300 overflows both; a steering vector's
    largest entry times the strength counts too; the same intervention passes in float32."""
    from circuits.core.artifacts import InputError

    Intervention("resid_post", 0, "scale", factor=1e5).check_finite(torch.float32)
    with pytest.raises(InputError, match="not finite in torch.float16"):
        Intervention("resid_post", 0, "scale", factor=1e5).check_finite(torch.float16)
    with pytest.raises(InputError, match="strength 1e\\+300"):
        Intervention("resid_post", 0, "scale", factor=1e300).check_finite(torch.float32)
    vec = torch.tensor([0.5, -3e34])
    Intervention("resid_post", 0, "add", vector=vec, factor=10.0).check_finite(torch.float32)
    with pytest.raises(InputError, match="times the steering vector"):
        Intervention("resid_post", 0, "add", vector=vec, factor=1e5).check_finite(torch.float32)
    with pytest.raises(InputError, match="times the steering vector"):
        Intervention("resid_post", 0, "add", vector=torch.tensor([float("nan")]), factor=1.0).check_finite(
            torch.float32
        )
