"""Model loading and the exact decomposition invariants, on tiny models of every architecture."""

from __future__ import annotations

import shutil

import pytest
import torch

from circuits.core.model import ModelHandle, ModelLoadError, load_model
from circuits.discovery.decompose import (
    decomposition_hooks,
    final_norm,
    head_outputs,
    logits_from_resid,
    neuron_outputs,
    residual_stack,
)
from circuits.toy.tiny import ARCHITECTURES

PROMPT = ("Always reply in fear.", "I handed in the report on Friday.\nMy manager said she would read it.")


def _cache(m: ModelHandle, names=None):
    ids = torch.tensor([m.chat_ids(*PROMPT)], device=m.device)
    with torch.no_grad():
        return m.bridge.run_with_cache(ids, names_filter=names)


def test_arch_facts(tiny_model):
    a = tiny_model.arch
    assert (a.n_layers, a.n_heads, a.n_kv_heads, a.d_model, a.d_head, a.d_mlp) == (2, 4, 2, 64, 16, 128)
    assert a.gated_mlp
    assert a.post_norms == (a.architecture == "Gemma2ForCausalLM")
    assert type(a).from_dict(a.to_dict()) == a


PACKAGED = {"smollm2-135m": "smollm2", "qwen2.5-coder-0.5b": "qwen_coder"}
"""Packaged real model -> its session fixture."""


@pytest.fixture(params=ARCHITECTURES + tuple(PACKAGED))
def any_model(request):
    """The tiny models of every architecture and the packaged real models (real weights)."""
    if request.param in PACKAGED:
        return request.getfixturevalue(PACKAGED[request.param])
    return request.getfixturevalue("tiny_models")[request.param]


def _atol(m: ModelHandle) -> float:
    """float32 sums over 1536 neurons / 576 dims of real activations round at ~2e-5; tiny ones at 1e-6."""
    return 1e-4 if m.arch.d_model > 64 else 1e-5


def test_heads_sum_to_attention_output(any_model):
    m = any_model
    _, cache = _cache(m)
    for layer in range(m.arch.n_layers):
        z = cache[m.hooks.z(layer)]
        assert z.shape[-2:] == (m.arch.n_heads, m.arch.d_head)
        heads = head_outputs(m, z, layer)
        total = heads.sum(-2) + m.b_O(layer)
        torch.testing.assert_close(total, cache[m.hooks.attn_raw(layer)], atol=_atol(m), rtol=1e-5)
        if not m.arch.post_norms:
            torch.testing.assert_close(total, cache[m.hooks.attn_out(layer)], atol=_atol(m), rtol=1e-5)


def test_neurons_sum_to_mlp_output(any_model):
    m = any_model
    _, cache = _cache(m)
    for layer in range(m.arch.n_layers):
        post = cache[m.hooks.mlp_post(layer)]
        total = neuron_outputs(m, post, layer).sum(-2) + m.b_out(layer)
        torch.testing.assert_close(total, cache[m.hooks.mlp_raw(layer)], atol=_atol(m), rtol=1e-5)


def test_residual_decomposition_reproduces_logits(any_model):
    m = any_model
    logits, cache = _cache(m, decomposition_hooks(m))
    labels, stack = residual_stack(m, cache, pos=-1)
    assert len(labels) == stack.shape[0] == 1 + m.arch.n_layers * (m.arch.n_heads + 2)
    resid = cache[m.hooks.final_resid][:, -1]
    torch.testing.assert_close(stack.sum(0), resid, atol=1e-4, rtol=1e-4)
    rebuilt = logits_from_resid(m, final_norm(m, cache, stack.sum(0)))
    torch.testing.assert_close(rebuilt, logits[:, -1], atol=1e-4, rtol=1e-4)
    # the decomposition is not trivially satisfied: dropping one head changes the logits
    drop = stack.sum(0) - stack[labels.index("a1.h0")]
    assert (logits_from_resid(m, final_norm(m, cache, drop)) - logits[:, -1]).abs().max() > 1e-3


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_bridge_matches_hf_log_probs(tiny_dirs, arch):
    """Compatibility mode folds norms (with non-trivial gains and biases) but keeps the model's
    log-probabilities, for every supported architecture."""
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(tiny_dirs[arch]).eval()
    vectors = {n: p for n, p in ref.named_parameters() if p.ndim == 1}  # biases and norm gains
    assert vectors and all(not (torch.all(p == 0) or torch.all(p == 1)) for p in vectors.values())
    if arch == "qwen2":
        assert any(n.endswith("q_proj.bias") for n in vectors)
    m = load_model(tiny_dirs[arch])
    ids = torch.tensor([m.chat_ids(*PROMPT)])
    with torch.no_grad():
        a = ref(ids).logits.log_softmax(-1)
        b = m.bridge(ids).log_softmax(-1)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_chat_prompt_ends_at_generation_prompt(tiny_model):
    m = tiny_model
    ids = m.chat_ids(*PROMPT)
    text = m.tokenizer.decode(ids)
    assert text.endswith("<|im_start|>assistant\n")
    assert text.startswith("<|im_start|>system\nAlways reply in fear.<|im_end|>")
    ref = m.tokenizer.apply_chat_template(
        [{"role": "system", "content": PROMPT[0]}, {"role": "user", "content": PROMPT[1]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert ids == m.tokenizer(ref, add_special_tokens=False)["input_ids"]
    assert m.tokenizer.eos_token_id not in ids[-3:]


def test_chat_prompt_fallbacks(qwen_tiny):
    m = qwen_tiny
    saved = m.tokenizer.chat_template
    try:
        # a template that rejects the system role (as Gemma's does): system text joins the user turn
        m.tokenizer.chat_template = (
            "{% for m in messages %}{% if m['role'] == 'system' %}"
            "{{ raise_exception('System role not supported') }}{% endif %}"
            "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
        )
        text = m.tokenizer.decode(m.chat_ids(*PROMPT))
        assert text.startswith("<|im_start|>user\nAlways reply in fear.\n\nI handed in")
        assert text.endswith("<|im_start|>assistant\n")
        # no template at all: the documented plain format
        m.tokenizer.chat_template = None
        text = m.tokenizer.decode(m.chat_ids(*PROMPT))
        assert text == f"{PROMPT[0]}\n\nUser: {PROMPT[1]}\nAssistant:"
    finally:
        m.tokenizer.chat_template = saved


# Chat templates in the shapes of the supported families (written for these tests): Llama 3 header
# blocks, Gemma turns that refuse a system role, Qwen3 ChatML with a thinking switch.
FAMILY_TEMPLATES = {
    "llama3": (
        "<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nAlways reply in fear.<|eot_id|>",
    ),
    "gemma": (
        "<bos>{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
        "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
        "<start_of_turn>model\n",
        "<bos><start_of_turn>user\nAlways reply in fear.\n\nI handed in",
    ),
    "qwen3": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n"
        "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}",
        "<|im_start|>assistant\n<think>\n\n</think>\n\n",
        "<|im_start|>system\nAlways reply in fear.<|im_end|>",
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILY_TEMPLATES))
def test_chat_prompt_with_family_templates(qwen_tiny, family):
    """The prompt ends exactly at each family's generation prompt; Gemma-style templates get the
    system text in the user turn; Qwen3's thinking switch passes through chat_template_kwargs."""
    m = qwen_tiny
    template, gen_prompt, start = FAMILY_TEMPLATES[family]
    saved = (m.tokenizer.chat_template, m.chat_template_kwargs)
    try:
        m.tokenizer.chat_template = template
        m.chat_template_kwargs = {"enable_thinking": False} if family == "qwen3" else {}
        text = m.tokenizer.decode(m.chat_ids(*PROMPT))
        assert text.startswith(start)
        assert text.endswith(
            PROMPT[1]
            + {"llama3": "<|eot_id|>", "gemma": "<end_of_turn>\n", "qwen3": "<|im_end|>\n"}[family]
            + gen_prompt
        )
        if family == "qwen3":
            m.chat_template_kwargs = {}
            assert m.tokenizer.decode(m.chat_ids(*PROMPT)).endswith("<|im_end|>\n<|im_start|>assistant\n")
    finally:
        m.tokenizer.chat_template, m.chat_template_kwargs = saved


def test_fingerprint_stable_and_sensitive(tiny_dirs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = tiny_dirs["llama"]
    a = load_model(src)
    assert load_model(src).fingerprint == a.fingerprint
    hf = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        hf.model.layers[1].mlp.down_proj.weight[3, 5] += 0.5
    hf.save_pretrained(tmp_path / "changed")
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path / "changed")
    assert load_model(tmp_path / "changed").fingerprint != a.fingerprint
    assert load_model(tiny_dirs["qwen2"]).fingerprint != a.fingerprint


def test_weights_digest_resolution_is_bfloat16():
    """Documented behaviour: bf16 and fp32 copies agree; one weight moved by a bf16 step changes the
    digest, a move below bf16 resolution does not."""
    from circuits.core.model import weights_digest

    lin = torch.nn.Linear(4, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(4, 4).to(torch.bfloat16).float())
        lin.bias.copy_(torch.randn(4).to(torch.bfloat16).float())
        lin.weight[1, 2] = 1.0
    d = weights_digest(lin)
    assert weights_digest(torch.nn.Linear(4, 4).to(torch.bfloat16).requires_grad_(False)) != d
    bf = torch.nn.Linear(4, 4).to(torch.bfloat16)
    bf.load_state_dict({k: v.to(torch.bfloat16) for k, v in lin.state_dict().items()})
    assert weights_digest(bf) == d
    with torch.no_grad():
        lin.weight[1, 2] = 1.0 + 2**-10  # below bf16 resolution at 1.0 (2**-7)
    assert weights_digest(lin) == d
    with torch.no_grad():
        lin.weight[1, 2] = 1.0 + 2**-7
    assert weights_digest(lin) != d


def test_offline_hub_name_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        load_model("no-such-org/no-such-model-xyz")
    msg = str(err.value)
    assert "no-such-org/no-such-model-xyz" in msg and "local" in msg and "--model" in msg


def test_broken_local_directory_names_it(tiny_dirs, tmp_path):
    d = tmp_path / "broken"
    shutil.copytree(tiny_dirs["qwen2"], d)
    for f in d.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelLoadError, match="broken"):
        load_model(d)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("smollm2-135m", ("LlamaForCausalLM", 30, 576, 9, 3, 1536)),
        ("qwen2.5-coder-0.5b", ("Qwen2ForCausalLM", 24, 896, 14, 2, 4864)),
    ],
)
def test_packaged_model_equals_transformers_gguf_reading(request, name, shape):
    """Each packaged model through the cache and the bridge gives the log-probabilities transformers
    computes from the GGUF file itself (the dequantized weights: Q4_1 for SmolLM2; Q5_0, Q4_K, Q6_K and
    Q8_0 for Qwen, whose file is joined from six parts)."""
    from transformers import AutoModelForCausalLM

    from circuits.core.gguf import packaged_gguf

    model = request.getfixturevalue(PACKAGED[name])
    path = packaged_gguf(name)
    a = model.arch
    assert (a.architecture, a.n_layers, a.d_model, a.n_heads, a.n_kv_heads, a.d_mlp) == shape
    ref = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    ids = torch.tensor([model.chat_ids(None, "Reply in a happy tone: " + PROMPT[1])])
    with torch.no_grad():
        want = ref(ids).logits.log_softmax(-1)
        got = model.bridge(ids).log_softmax(-1)
        shorter = ref(ids[:, :-1]).logits.log_softmax(-1)
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
    # the comparison can fail: another prompt's log-probabilities differ by far more than the tolerance
    assert (want[0, -1] - shorter[0, -1]).abs().max() > 0.1


def test_a_model_folder_without_tokenizer_files_is_refused_before_loading(tiny_dirs, tmp_path):
    d = tmp_path / "notok"
    shutil.copytree(tiny_dirs["qwen2"], d)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (d / name).unlink()
    with pytest.raises(ModelLoadError, match=r"notok' has no tokenizer file \(one of tokenizer.json"):
        load_model(d)
    (d / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="notok' has no config.json"):
        load_model(d)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_model_folder_with_non_finite_weights_is_refused(tiny_dirs, tmp_path, bad):
    from safetensors.torch import load_file, save_file

    d = tmp_path / "nanmodel"
    shutil.copytree(tiny_dirs["qwen2"], d)
    weights = d / "model.safetensors"
    tensors = load_file(str(weights))
    name = sorted(k for k in tensors if k.endswith("mlp.down_proj.weight"))[0]
    tensors[name].view(-1)[5] = bad
    save_file(tensors, str(weights), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError) as err:
        load_model(d)
    assert str(err.value) == f"model directory {str(d)!r}: weight {name!r} holds NaN or infinite values"
