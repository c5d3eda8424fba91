"""The valence-arousal subspace (section C of the notes): loaders, the subspace and its checks,
behaviour probes. The ``va`` job (:class:`VAConfig`, :func:`run_va`) is
:mod:`circuits.runs.valence_arousal`."""

from circuits.va.loaders import (GOEMOTIONS, VAFormatError, VAInputError, load_labelled_texts, load_va_ratings, load_va_lexicon)
from circuits.va.subspace import (text_activations, emotion_vectors_from_texts, VALENCE_QUESTION, AROUSAL_QUESTION, parse_rating, self_report_va, VAAxes, fit_va_axes, circumplex, lexicon_check, axis_steering, random_directions)
from circuits.va.probes import (REFUSAL_PHRASES, is_refusal, load_refusal_phrases, UNTYPED, score_refusals, load_prompts, load_sycophancy, answer_logprob, sycophancy_score, refusal_rates, refusal_rate, REFUSAL_TOKENS, COMPLIANCE_TOKENS, refusal_token_logits)

__all__ = ['GOEMOTIONS', 'VAFormatError', 'VAInputError', 'load_labelled_texts', 'load_va_ratings', 'load_va_lexicon', 'text_activations', 'emotion_vectors_from_texts', 'VALENCE_QUESTION', 'AROUSAL_QUESTION', 'parse_rating', 'self_report_va', 'VAAxes', 'fit_va_axes', 'circumplex', 'lexicon_check', 'axis_steering', 'random_directions', 'REFUSAL_PHRASES', 'is_refusal', 'load_refusal_phrases', 'UNTYPED', 'score_refusals', 'load_prompts', 'load_sycophancy', 'answer_logprob', 'sycophancy_score', 'refusal_rates', 'refusal_rate', 'REFUSAL_TOKENS', 'COMPLIANCE_TOKENS', 'refusal_token_logits']
