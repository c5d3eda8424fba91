"""The fast path (plain HF modules sharing the bridge's weights) computes what the bridge path computes.

For every site x op x position mode, on the four tiny architectures (and a covering subset on
SmolLM2-135M-Instruct), greedy generation under the same intervention gives the same tokens on both
paths and per-step logits within 1e-3 (float32; the unedited paths differ by ~5e-6 on the tiny models
and ~5e-5 on SmolLM2, from sdpa vs the bridge's eager attention). Per-row edits equal each row
generated alone with its own edit.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from circuits.core.fastpath import plain_hooks, plain_model
from circuits.core.generate import GenerationSettings, continuation_logprobs, generate, steered
from circuits.core.hooks import OPS, POSITIONS, SITES, Intervention, rows_of

ATOL = 1e-3
PROMPTS = [("Always reply in anger.", "The train was late again."), (None, "I handed in the report on Friday.")]


def _ids(m):
    return [m.chat_ids(system, user) for system, user in PROMPTS]


def _intervention(m, site, op, positions, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = m.arch
    index = {"neurons": (1, 3, 7), "heads": (0, a.n_heads - 1)}.get(site)
    shape = {"neurons": (3,), "heads": (2, a.d_head)}.get(site, (a.d_model,))
    vector = torch.randn(*shape, generator=g)
    if op == "add_rms":
        vector = vector / vector.norm()
    factor = {"scale": 0.5, "add": 2.0, "add_rms": 4.0, "set": 1.0}[op]
    layer = a.n_layers // 2 if a.n_layers > 2 else 0
    return Intervention(
        site, layer, op, index, vector=vector if op != "scale" else None, factor=factor, positions=positions
    )


def _greedy(m, ivs, backend, n_new=5, rows=None, prompts=None):
    ids, mask = m.pad_left(prompts or _ids(m))
    with torch.no_grad(), steered(m, ivs, rows, backend=backend) as hf:
        out = hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            do_sample=False,
            pad_token_id=m.pad_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
    return out.sequences[:, ids.shape[1] :], torch.stack(out.scores, 1)


def _max_diff(a, b):
    """Largest |a - b| over the finite entries; inf where the two disagree on which entries are -inf
    (tokens masked by min_new_tokens)."""
    fin = torch.isfinite(a)
    if not torch.equal(fin, torch.isfinite(b)):
        return float("inf")
    return (a[fin] - b[fin]).abs().max().item()


def _check(m, iv, n_new=5):
    fast_tok, fast_logits = _greedy(m, [iv], "fast", n_new)
    ref_tok, ref_logits = _greedy(m, [iv], "bridge", n_new)
    problems = []
    if not torch.equal(fast_tok, ref_tok):
        problems.append(f"{iv.site}/{iv.op}/{iv.positions}: tokens {fast_tok.tolist()} vs {ref_tok.tolist()}")
    diff = _max_diff(fast_logits, ref_logits)
    if diff > ATOL:
        problems.append(f"{iv.site}/{iv.op}/{iv.positions}: logits differ by {diff:.2e}")
    return problems


@pytest.mark.parametrize("site", SITES)
def test_fast_path_equals_bridge_path_for_every_op_and_position(tiny_model, site):
    problems = []
    for op, positions in itertools.product(OPS, POSITIONS):
        problems += _check(tiny_model, _intervention(tiny_model, site, op, positions))
    assert not problems, "\n".join(problems)


def test_fast_path_equals_bridge_path_on_smollm2(smollm2):
    """Every site x op once, the position modes taken in turn (24 cases on the real model)."""
    problems = []
    modes = itertools.cycle(POSITIONS)
    for site, op in itertools.product(SITES, OPS):
        problems += _check(smollm2, _intervention(smollm2, site, op, next(modes)), n_new=3)
    assert not problems, "\n".join(problems)


def test_the_edits_change_generation(tiny_model):
    """The equality above is not two no-ops: a strong edit changes the logits on both paths."""
    iv = Intervention("resid_post", 0, "add", vector=torch.ones(tiny_model.arch.d_model), factor=5.0)
    for backend in ("fast", "bridge"):
        _, plain = _greedy(tiny_model, [], backend)
        _, edited = _greedy(tiny_model, [iv], backend)
        assert _max_diff(plain, edited) > 0.1, backend


def test_resid_mid_edits_reach_the_residual_stream(tiny_model):
    """An edit of resid_mid reaches the next layer on both paths (the bridge's hook_resid_mid alias alone would
    only feed the MLP): adding v to resid_mid and adding v to attn_out are the same edit."""
    v = torch.randn(tiny_model.arch.d_model, generator=torch.Generator().manual_seed(3))
    for backend in ("fast", "bridge"):
        _, mid = _greedy(tiny_model, [Intervention("resid_mid", 0, "add", vector=v)], backend)
        _, attn = _greedy(tiny_model, [Intervention("attn_out", 0, "add", vector=v)], backend)
        assert _max_diff(mid, attn) < 1e-4


def test_per_row_edits_equal_each_row_alone(tiny_model):
    m = tiny_model
    ids = _ids(m) + [m.chat_ids("Be brief.", "My order arrived today.")]
    edits = [
        [_intervention(m, "resid_post", "add", "last+generated", seed=1)],
        [],
        [_intervention(m, "heads", "set", "all", seed=2), _intervention(m, "neurons", "scale", "last")],
    ]
    batched = generate(
        m,
        ids,
        GenerationSettings(max_new_tokens=6, batch_size=3),
        interventions=edits,
        progress=False,
        min_new_tokens=6,
    )
    bridge = generate(
        m,
        ids,
        GenerationSettings(max_new_tokens=6, batch_size=3, backend="bridge"),
        interventions=edits,
        progress=False,
        min_new_tokens=6,
    )
    alone = [
        generate(
            m, [p], GenerationSettings(max_new_tokens=6), interventions=e or None, progress=False, min_new_tokens=6
        )[0]
        for p, e in zip(ids, edits)
    ]
    assert batched == alone == bridge
    ivs, rows = rows_of(edits, [0, 1, 2])
    assert rows == [(0,), (2,), (2,)]
    tokens, logits = _greedy(m, ivs, "fast", 6, rows=rows, prompts=ids)
    _, unedited = _greedy(m, [], "fast", 6, prompts=ids)
    for r, (p, e) in enumerate(zip(ids, edits)):
        assert tokens[r].tolist() == _greedy(m, e, "fast", 6, prompts=[p])[0][0].tolist()
        moved = _max_diff(logits[r], unedited[r])
        assert (moved > 1e-2) if e else (moved == 0), (r, moved)  # each row got its own edits, and only those


def test_teacher_forced_scores_agree(tiny_model):
    m = tiny_model
    prompts, conts = _ids(m), [[5, 6, 7], [8, 9]]
    iv = [_intervention(m, "attn_out", "add", "all")]
    fast = continuation_logprobs(m, prompts, conts, interventions=iv)
    ref = continuation_logprobs(m, prompts, conts, interventions=iv, backend="bridge")
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_the_plain_model_shares_the_bridge_weights(tiny_model):
    twin = plain_model(tiny_model)
    bridge_ptrs = {p.data_ptr() for p in tiny_model.hf_model.parameters()}
    assert all(p.data_ptr() in bridge_ptrs for p in twin.parameters())
    assert not any(t.is_meta for t in [*twin.parameters(), *twin.buffers()])
    with plain_hooks(tiny_model, [_intervention(tiny_model, "heads", "add", "all")]):
        assert any(m._forward_pre_hooks for m in twin.modules())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in twin.modules())  # removed on exit


def test_backend_is_checked():
    with pytest.raises(ValueError, match="backend"):
        GenerationSettings(backend="vllm")
