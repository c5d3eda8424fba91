"""Generation through the bridge: the KV cache must not change what is generated.

transformers 5.24 renamed the KV-cache keyword passed to attention modules (``past_key_values`` ->
``cache``); TransformerLens 4.3's attention bridges read only the old name, so cached decoding
through the bridge silently attended to the current token alone (``circuits.core.model.route_cache_kwarg``
fixes it). These tests catch that class of break directly, on every architecture the tests build and
on the shipped toy model: greedy generation with the cache equals generation without it, and equals
a plain HF model loaded from the same directory; a cached single-token step reproduces the full
forward pass's last-position log-probs.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from circuits.core.generate import GenerationSettings, generate
from circuits.core.model import load_model

PROMPTS = [
    ("Always reply in anger.", "The train was late again."),
    ("Keep the reply to at most two sentences.", "I handed in the report on Friday."),
    ("Always reply in happiness.", "My manager said she would read it next week, what a wonderful surprise."),
]


def _prompt_ids(m):
    return [m.chat_ids(system, user) for system, user in PROMPTS]


def _plain_hf_greedy(directory, m, prompts, n_new):
    hf = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    ids, mask = m.pad_left(prompts)
    with torch.no_grad():
        out = hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            do_sample=False,
            pad_token_id=m.pad_id,
        )
    return [row[ids.shape[1] :].tolist() for row in out]


def _bridge_greedy(m, prompts, n_new, use_cache):
    ids, mask = m.pad_left(prompts)
    with torch.no_grad():
        out = m.hf_model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            do_sample=False,
            pad_token_id=m.pad_id,
            use_cache=use_cache,
        )
    return [row[ids.shape[1] :].tolist() for row in out]


@pytest.mark.parametrize("arch", ["qwen2", "llama", "qwen3", "gemma2"])
def test_cached_generation_equals_uncached_and_plain_hf(arch, tiny_dirs, tiny_models):
    m = tiny_models[arch]
    prompts = _prompt_ids(m)
    assert len({len(p) for p in prompts}) == len(prompts)  # a left-padded batch of unequal rows
    cached = _bridge_greedy(m, prompts, 16, use_cache=True)
    uncached = _bridge_greedy(m, prompts, 16, use_cache=False)
    assert cached == uncached
    assert cached == _plain_hf_greedy(tiny_dirs[arch], m, prompts, 16)


def test_toy_model_cached_generation_equals_uncached():
    m = load_model("toy")
    prompts = _prompt_ids(m)
    texts_cached = generate(m, prompts, GenerationSettings(max_new_tokens=24), progress=False)
    texts_uncached = generate(m, prompts, GenerationSettings(max_new_tokens=24), progress=False, use_cache=False)
    assert texts_cached == texts_uncached
    assert all(t.strip() for t in texts_cached)


@pytest.mark.parametrize("arch", ["qwen2", "llama", "qwen3", "gemma2"])
def test_cached_last_token_step_reproduces_full_forward(arch, tiny_models):
    """The prefix-cache trick of the sweeps: prefill all but the last token, then one cached step."""
    m = tiny_models[arch]
    ids, mask = m.pad_left(_prompt_ids(m))
    with torch.no_grad():
        full = m.hf_model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, -1]
        prefix = m.hf_model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], use_cache=True)
        cache = m.kv_cache_of(prefix)
        assert cache.get_seq_length() == ids.shape[1] - 1  # the bridge wrote the prefix into the cache
        step = m.hf_model(
            input_ids=ids[:, -1:], attention_mask=mask, use_cache=True, **{m.kv_cache_kwarg: cache}
        ).logits[:, -1]
    torch.testing.assert_close(step.log_softmax(-1), full.log_softmax(-1), atol=1e-4, rtol=0)


def test_continuation_logprobs_equal_a_full_pass_per_sequence(qwen_tiny):
    """Only the last positions' logits are computed; each continuation's log-probs still equal those of
    an unbatched full forward pass (left padding, different prompt and continuation lengths)."""
    from circuits.core.generate import continuation_logprobs

    m = qwen_tiny
    prompts = [
        m.chat_ids("Always reply in fear.", "The train was late."),
        m.chat_ids(None, "Hi"),
        m.chat_ids(None, "The parcel came a week early and it was the wrong colour."),
    ]
    conts = [[5, 9, 11], [7], [3, 4]]
    # batches of 2 over length-sorted rows: the output must still follow the input's order
    got = continuation_logprobs(m, prompts, conts, batch_size=2)
    assert [len(g) for g in got] == [3, 1, 2]
    for p, c, g in zip(prompts, conts, got):
        ids = torch.tensor([p + c])
        with torch.no_grad():
            lp = torch.log_softmax(m.hf_model(input_ids=ids).logits.float(), -1)[0]
        want = torch.stack([lp[len(p) - 1 + i, t] for i, t in enumerate(c)])
        torch.testing.assert_close(g, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_new_tokens", 0),
        ("max_new_tokens", -1),
        ("batch_size", 0),
        ("top_p", 1.5),
        ("temperature", float("nan")),
        ("backend", "slow"),
    ],
)
def test_generation_settings_refuse_values_that_cannot_give_a_reply(field, value):
    from circuits.core.artifacts import InputError
    from circuits.core.generate import GenerationSettings

    with pytest.raises(InputError, match=f"GenerationSettings.{field}"):
        GenerationSettings(**{field: value})


def _scoring_prompts(m):
    return [
        m.chat_ids("Always reply in fear.", "The train was late."),
        m.chat_ids(None, "Hi"),
        m.chat_ids("Always reply in joy.", "The parcel came a week early and it was the wrong colour."),
        m.chat_ids(None, "Tell me about the weather today, please."),
    ]


@pytest.mark.parametrize("arch", ["qwen2", "llama", "qwen3", "gemma2"])
@pytest.mark.parametrize("backend", ["fast", "bridge"])
def test_generate_scored_equals_generate_and_teacher_forced_scores(arch, backend, tiny_models):
    """The scores kept from the generation pass equal the slow teacher-forced pass over the same tokens
    (the end-of-turn token after each reply included), and the replies are those of ``generate``:
    greedy, with the repetition penalty and n-gram ban of evaluate, in batches of unequal prompts."""
    from circuits.core.generate import continuation_logprobs, generate_scored

    m = tiny_models[arch]
    prompts = _scoring_prompts(m)
    s = GenerationSettings(max_new_tokens=12, batch_size=3, repetition_penalty=1.1, backend=backend)
    kw = dict(min_new_tokens=2, no_repeat_ngram_size=3, progress=False)
    scored = generate_scored(m, prompts, s, **kw)
    assert [r.text for r in scored] == generate(m, prompts, s, **kw)
    eos = m.tokenizer.eos_token_id
    for r in scored:
        assert len(r.tokens) == len(r.logprobs) and 2 <= len(r.tokens) <= 12 and eos not in r.tokens[:-1]
        assert m.tokenizer.decode(r.tokens, skip_special_tokens=True).strip() == r.text
    slow = continuation_logprobs(m, prompts, [r.tokens for r in scored], backend=backend)
    for r, want in zip(scored, slow):
        torch.testing.assert_close(r.logprobs, want, atol=1e-4, rtol=1e-4)
    open_rows = [i for i, r in enumerate(scored) if r.tokens[-1] != eos]
    assert open_rows  # the extra end-of-turn step is exercised
    ends = continuation_logprobs(m, [prompts[i] for i in open_rows], [scored[i].tokens + [eos] for i in open_rows])
    for i, want in zip(open_rows, ends):
        assert scored[i].end_logprob == pytest.approx(float(want[-1]), abs=1e-4)


def test_generate_scored_reply_ending_on_end_of_turn_scores_it_in_the_pass(qwen_tiny):
    """A reply cut by end-of-turn: its last token is end-of-turn and ``end_logprob`` is its score."""
    from circuits.core.generate import generate_scored

    m = qwen_tiny
    eos = m.tokenizer.eos_token_id
    prompts = _scoring_prompts(m)
    # make end-of-turn the greedy pick once the minimum length allows it

    def boost(module, args, output):
        output[..., eos] += 1e3
        return output

    from circuits.core.fastpath import plain_model

    h = plain_model(m).lm_head.register_forward_hook(boost)
    try:
        scored = generate_scored(m, prompts, GenerationSettings(max_new_tokens=8), min_new_tokens=3, progress=False)
    finally:
        h.remove()
    for r in scored:
        assert len(r.tokens) == 4 and r.tokens[-1] == eos and r.end_logprob == float(r.logprobs[-1])


@pytest.mark.parametrize("arch", ["qwen2", "llama", "qwen3", "gemma2"])
def test_shared_prefix_logprobs_equal_continuation_logprobs(arch, tiny_models):
    """Several continuations per prompt (unequal lengths, one empty, prompts repeated out of order),
    each distinct prompt run once: the same log-probs as the slow full pass, in input order."""
    from circuits.core.generate import continuation_logprobs
    from circuits.core.prefix import shared_prefix_logprobs

    m = tiny_models[arch]
    base = _scoring_prompts(m)
    g = torch.Generator().manual_seed(0)
    prompts, conts = [], []
    for k in range(11):
        prompts.append(base[(k * 3) % 4])
        n = [5, 1, 9, 0, 3][k % 5]
        conts.append(torch.randint(0, 100, (n,), generator=g).tolist())
    slow = continuation_logprobs(m, prompts, conts, batch_size=4)
    fast = shared_prefix_logprobs(m, prompts, conts, batch_size=3)
    assert [len(x) for x in fast] == [len(c) for c in conts]
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
