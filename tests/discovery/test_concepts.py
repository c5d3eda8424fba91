"""Emotion-concept vectors: token means against an unbatched reference, the neutral projection's exact
invariants, and the command on the toy run (saved, compared, selectable for direction steering)."""

from __future__ import annotations

import pytest
import torch

from circuits.core.hooks import Read, run_forward
from circuits.discovery.concept_vectors import ConceptConfig, concept_directions, neutral_projection, text_token_means

TEXTS = [
    ("I am so angry they lied to me again.", ["anger"]),
    ("What a wonderful surprise party!", ["surprise"]),
    ("The meeting is at nine.", ["neutral"]),
    ("Rotten meat in the fridge, revolting.", ["disgust"]),
    ("I can't stop crying since she left.", ["sadness"]),
    ("Hi", ["neutral"]),
    ("The bus leaves from platform four every hour.", ["neutral"]),
    ("We won the cup, best day ever!", ["happiness"]),
    ("Footsteps behind me in the dark alley.", ["fear"]),
    ("They shouted at me for nothing.", ["anger"]),
]


def test_token_means_equal_an_unbatched_reference(qwen_tiny):
    m = qwen_tiny
    texts = [t for t, _ in TEXTS]
    got = text_token_means(m, texts, start_offset=2, batch_size=3, progress=False)  # [n, 2, L, d]
    for i, text in enumerate(texts):
        ids = m.tokenizer(text, add_special_tokens=True)["input_ids"]
        t = torch.tensor([ids])
        for p, site in enumerate(("resid_mid", "resid_post")):
            for layer in range(m.arch.n_layers):
                r = Read(site, layer, positions="all")
                h = run_forward(m, t, torch.ones_like(t), reads=[r])[r][0]  # [pos, d]
                want = h[min(2, len(ids) - 1) :].mean(0)
                torch.testing.assert_close(got[i, p, layer], want, atol=1e-5, rtol=1e-4)


def test_projection_removes_the_neutral_components_exactly():
    g = torch.Generator().manual_seed(0)
    neutral = torch.randn(20, 8, generator=g) * torch.tensor([5.0, 3.0, 1, 1, 1, 1, 1, 1])
    basis = neutral_projection(neutral, 0.5)
    assert basis.shape[1] >= 1 and torch.allclose(basis.T @ basis, torch.eye(basis.shape[1]), atol=1e-5)
    assert neutral_projection(neutral, 0.0).shape == (8, 0)
    more = neutral_projection(neutral, 0.95)
    assert more.shape[1] > basis.shape[1]


def test_concept_directions_are_centred_and_orthogonal_to_neutral_components(qwen_tiny):
    m = qwen_tiny
    plain = concept_directions(m, TEXTS, ConceptConfig(variance_share=0.0), progress=False)
    # with nothing projected out the vectors are each emotion's mean minus the mean over emotions: they sum to 0
    torch.testing.assert_close(plain.diff.sum(2), torch.zeros_like(plain.diff.sum(2)), atol=1e-4, rtol=0)
    proj = concept_directions(m, TEXTS, ConceptConfig(variance_share=0.6), progress=False)
    acts = text_token_means(m, [t for t, _ in TEXTS], 2, progress=False)
    neutral = acts[[i for i, (_, ls) in enumerate(TEXTS) if "neutral" in ls]]
    for p in range(2):
        for layer in range(m.arch.n_layers):
            basis = neutral_projection(neutral[:, p, layer], 0.6)
            assert proj.prompts["components_removed"][p][layer] == basis.shape[1]
            assert float((proj.diff[p, layer] @ basis).abs().max()) < 1e-3 * float(proj.diff[p, layer].abs().max())
    assert torch.allclose(proj.unit.norm(dim=-1), torch.ones(proj.unit.shape[:-1]), atol=1e-5)
    with pytest.raises(ValueError, match="no text is labelled"):
        concept_directions(m, TEXTS[:3], emotions=["fear"], progress=False)
