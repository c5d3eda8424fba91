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
