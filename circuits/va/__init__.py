"""The valence-arousal subspace (section C of the notes): loaders, the subspace and its checks,
behaviour probes. The ``va`` job (:class:`VAConfig`, :func:`run_va`) is
:mod:`circuits.runs.valence_arousal`."""

from circuits.va.loaders import (
    GOEMOTIONS,
    VAFormatError,
    VAInputError,
    load_labelled_texts,
    load_va_lexicon,
    load_va_ratings,
)
from circuits.va.probes import (
    COMPLIANCE_TOKENS,
    REFUSAL_PHRASES,
    REFUSAL_TOKENS,
    UNTYPED,
    answer_logprob,
    is_refusal,
    load_prompts,
    load_refusal_phrases,
    load_sycophancy,
    refusal_rate,
    refusal_rates,
    refusal_token_logits,
    score_refusals,
    sycophancy_score,
)
from circuits.va.subspace import (
    AROUSAL_QUESTION,
    VALENCE_QUESTION,
    VAAxes,
    axis_steering,
    circumplex,
    emotion_vectors_from_texts,
    fit_va_axes,
    lexicon_check,
    parse_rating,
    random_directions,
    self_report_va,
    text_activations,
)

__all__ = ['GOEMOTIONS', 'VAFormatError', 'VAInputError', 'load_labelled_texts', 'load_va_ratings', 'load_va_lexicon', 'text_activations', 'emotion_vectors_from_texts', 'VALENCE_QUESTION', 'AROUSAL_QUESTION', 'parse_rating', 'self_report_va', 'VAAxes', 'fit_va_axes', 'circumplex', 'lexicon_check', 'axis_steering', 'random_directions', 'REFUSAL_PHRASES', 'is_refusal', 'load_refusal_phrases', 'UNTYPED', 'score_refusals', 'load_prompts', 'load_sycophancy', 'answer_logprob', 'sycophancy_score', 'refusal_rates', 'refusal_rate', 'REFUSAL_TOKENS', 'COMPLIANCE_TOKENS', 'refusal_token_logits']
