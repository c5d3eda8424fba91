"""The judge's encoders batch texts by token length: no padding where the lengths allow none, and the
same vectors as encoding each text alone, in input order."""

from __future__ import annotations

import pytest
import torch

TEXTS = [  # on the tiny tokenizer: 30, 6, 1, 22, 2, 20, 5, 9 tokens; "the" is one token, other words are spelled
    "supercalifragilisticexpialidocious",
    "the the the the the",
    "",  # encoded as "."
    "I am so angry about the late train!",
    "ok",
    "zzzzzzzzzzzzqqqqqqqq",
    "the the the the",
    "x,y;z!q?w",
]


def _pass_masks(encoder):
    """Wrap the encoder's model so each call records its attention mask."""
    masks: list[torch.Tensor] = []
    inner = encoder.model

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, **enc):
            masks.append(enc["attention_mask"].clone())
            return self.inner(**enc)

    encoder.model = Spy()
    return masks


def test_length_batches_sort_by_tokens_and_cover_every_text_once(tiny_dirs):
    from transformers import AutoTokenizer

    from circuits.judges.encoder import length_batches

    tok = AutoTokenizer.from_pretrained(tiny_dirs["qwen2"])
    texts = [t or "." for t in TEXTS]
    n_tok = [len(tok(t)["input_ids"]) for t in texts]
    by_chars = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    assert [n_tok[i] for i in by_chars] != sorted(n_tok)  # character order is not token order here
    seen, widths = [], []
    for idx, enc in length_batches(tok, texts, 3, 256):
        seen += idx
        widths.append(enc["input_ids"].shape[1])
        assert enc["input_ids"].shape == enc["attention_mask"].shape == (len(idx), max(n_tok[i] for i in idx))
    assert sorted(seen) == list(range(len(texts)))
    assert [n_tok[i] for i in seen] == sorted(n_tok)
    assert widths == sorted(widths)


def test_lm_encoder_batched_by_length_equals_each_text_alone(tiny_dirs):
    from circuits.judges.encoder import LMEncoder

    enc = LMEncoder(str(tiny_dirs["qwen2"]), 1, batch_size=2)
    alone = torch.cat([enc([t]) for t in TEXTS])
    masks = _pass_masks(enc)
    got = enc(TEXTS)
    torch.testing.assert_close(got, alone, atol=1e-5, rtol=1e-5)
    # the padded positions computed: those of neighbours in token order, fewer than character order gives
    n_tok = [len(enc.tokenizer(t or ".")["input_ids"]) for t in TEXTS]

    def padding(order):
        return sum(
            max(n_tok[i] for i in order[s : s + 2]) * 2 - sum(n_tok[i] for i in order[s : s + 2])
            for s in range(0, 8, 2)
        )

    by_tokens = padding(sorted(range(8), key=lambda i: n_tok[i]))
    assert by_tokens < padding(sorted(range(8), key=lambda i: len(TEXTS[i] or ".")))
    assert sum(int((1 - m).sum()) for m in masks) == by_tokens


def test_sentence_encoder_batched_by_length_equals_each_text_alone():
    from circuits.judges.encoder import EncoderMissing, SentenceEncoder

    try:
        enc = SentenceEncoder(batch_size=3)
    except EncoderMissing:
        pytest.skip("the packaged sentence encoder is not installed")
    alone = torch.cat([enc([t]) for t in TEXTS])
    got = enc(TEXTS)
    torch.testing.assert_close(got, alone, atol=1e-5, rtol=1e-5)
    assert torch.allclose(got.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)


def test_sentence_encoder_layers_are_each_layers_unit_token_mean():
    """``layers=True``: per text, each of MiniLM's layers averaged over the text's own tokens (no
    padding), scaled to unit norm, concatenated in layer order; the last block equals the plain
    encoder's vector. Batched by length, the same as each text alone."""
    from circuits.judges.encoder import EncoderMissing, SentenceEncoder

    try:
        enc = SentenceEncoder(batch_size=3, layers=True)
    except EncoderMissing:
        pytest.skip("the packaged sentence encoder is not installed")
    d, n_layers = enc.model.config.hidden_size, enc.model.config.num_hidden_layers
    got = enc(TEXTS)
    assert got.shape == (len(TEXTS), d * n_layers) and enc.dim == d * n_layers
    with torch.no_grad():  # the slow way: one text at a time, no mask, plain means
        for i, t in enumerate(TEXTS):
            ids = enc.tokenizer([t or "."], truncation=True, max_length=256, return_tensors="pt")
            states = enc.model(**ids, output_hidden_states=True).hidden_states[1:]
            slow = torch.cat([torch.nn.functional.normalize(h[0].mean(0), dim=-1) for h in states])
            torch.testing.assert_close(got[i], slow, atol=1e-5, rtol=1e-5)
    plain = SentenceEncoder(batch_size=3)
    torch.testing.assert_close(got[:, -d:], plain(TEXTS), atol=1e-5, rtol=1e-5)
