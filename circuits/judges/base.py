"""Judges beyond the lexicon: any Hugging Face emotion classifier, and an LLM over an
OpenAI-compatible chat API asking the paper's binary style-match question.

Every judge is called on a batch of texts. Label judges (:class:`~circuits.judges.lexicon.LexiconJudge`,
:class:`ClassifierJudge`) return objects with ``.label`` and ``.scores``; the LLM judge answers
whether each text matches a *target* emotion (:meth:`LLMJudge.match`), which is what the evaluation
needs.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from circuits.core.artifacts import InputError
from circuits.core.emotions import EMOTIONS, LABELS, NEUTRAL
from circuits.judges.lexicon import Judgement

DEFAULT_LABEL_MAP: dict[str, str] = {
    "anger": "anger",
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "joy": "happiness",
    "happiness": "happiness",
    "happy": "happiness",
    "love": "happiness",
    "neutral": NEUTRAL,
    "sadness": "sadness",
    "sad": "sadness",
    "surprise": "surprise",
}
"""Classifier label -> our label. The common 7-class English emotion classifiers (anger, disgust,
fear, joy, neutral, sadness, surprise) map directly; unmapped labels are ignored."""


class JudgeSpecError(InputError):
    """A judge that cannot be built: unknown spec, classifier that does not load."""


class ClassifierJudge:
    """Judge with a Hugging Face sequence-classification model (hub name or local directory).

    ``label_map`` maps the model's ``id2label`` names (case-insensitive) to our labels; the scores of
    our labels are the summed softmax probabilities of the classes mapped to them, and the verdict is
    the best of them.
    """

    def __init__(
        self,
        name_or_dir: str,
        label_map: Mapping[str, str] | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 256,
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = str(name_or_dir)
        local = Path(name_or_dir).expanduser()
        if local.is_dir() and not (local / "config.json").is_file():
            raise JudgeSpecError(
                f"classifier judge {name_or_dir!r}: the folder has no config.json (a classifier "
                "folder needs config.json, the weights and the tokenizer files)"
            )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_dir)
            self.model = AutoModelForSequenceClassification.from_pretrained(name_or_dir).to(device).eval()
        except (OSError, ValueError, RuntimeError) as err:
            raise JudgeSpecError(
                f"classifier judge {name_or_dir!r} could not be loaded (a hub name needs the "
                f"network or a cached copy; or pass a local directory): {err}"
            ) from err
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        lm = {k.lower(): v for k, v in (label_map or DEFAULT_LABEL_MAP).items()}
        bad = sorted({v for v in lm.values() if v not in LABELS})
        if bad:
            raise ValueError(f"label_map targets must be among {LABELS}, got {bad}")
        id2label = self.model.config.id2label
        self.class_to_label = {int(i): lm.get(str(name).lower()) for i, name in id2label.items()}
        if not any(self.class_to_label.values()):
            raise ValueError(
                f"{name_or_dir}: none of the classifier's labels {list(id2label.values())} is in "
                f"the label map; pass label_map={{their_label: one of {LABELS}}}"
            )

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> list[Judgement]:
        out: list[Judgement] = []
        for s in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                list(texts[s : s + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            probs = torch.softmax(self.model(**enc).logits.float(), -1).cpu()
            for row in probs:
                scores = dict.fromkeys(LABELS, 0.0)
                for i, p in enumerate(row.tolist()):
                    lab = self.class_to_label.get(i)
                    if lab:
                        scores[lab] += p
                label = max(LABELS, key=lambda k: scores[k])
                out.append(
                    Judgement(
                        label=label, scores={e: scores[e] for e in EMOTIONS} | {NEUTRAL: scores[NEUTRAL]}, matches=()
                    )
                )
        return out

    def label(self, texts: Sequence[str]) -> list[str]:
        return [j.label for j in self(texts)]

    match_threshold = 0.5

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """The summed class probabilities per label of each text."""
        return [dict(j.scores) for j in self(texts)]


STYLE_QUESTION = (
    "You are checking the emotional style of a short reply.\n"
    "Target emotion: {emotion}\n"
    'Reply: """{text}"""\n'
    "Is the reply written in a way that clearly expresses {emotion}? Judge the style and tone, not the "
    "topic. Answer with one word: yes or no."
)
"""The binary style-match question (our wording of the paper's judge prompt)."""


class LLMJudgeError(InputError, RuntimeError):
    """The judge's API call failed (HTTP error, bad JSON, missing configuration)."""


@dataclass
class LLMJudge:
    """Binary style-match judge over an OpenAI-compatible ``/chat/completions`` endpoint.

    Configuration comes from the arguments or the environment: ``EMOCIRCUITS_JUDGE_URL`` (or
    ``OPENAI_BASE_URL``, e.g. ``https://api.openai.com/v1``), ``EMOCIRCUITS_JUDGE_KEY`` (or
    ``OPENAI_API_KEY``) and ``EMOCIRCUITS_JUDGE_MODEL``. Answers that are neither yes nor no count as
    "no" and are counted in :attr:`unparsed`.
    """

    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    question: str = STYLE_QUESTION
    timeout: float = 60.0
    unparsed: int = 0

    def __post_init__(self) -> None:
        env = os.environ
        self.base_url = (self.base_url or env.get("EMOCIRCUITS_JUDGE_URL") or env.get("OPENAI_BASE_URL") or "").rstrip(
            "/"
        )
        self.api_key = self.api_key or env.get("EMOCIRCUITS_JUDGE_KEY") or env.get("OPENAI_API_KEY")
        self.model = self.model or env.get("EMOCIRCUITS_JUDGE_MODEL")
        if not self.base_url or not self.model:
            raise LLMJudgeError(
                "LLM judge needs a base URL and a model: set EMOCIRCUITS_JUDGE_URL (or "
                "OPENAI_BASE_URL) and EMOCIRCUITS_JUDGE_MODEL, or pass base_url= and model="
            )

    def ask(self, prompt: str) -> str:
        body = json.dumps(
            {"model": self.model, "temperature": 0, "max_tokens": 3, "messages": [{"role": "user", "content": prompt}]}
        ).encode()
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read().decode())
        except urllib.error.HTTPError as err:
            raise LLMJudgeError(f"{self.base_url}/chat/completions: HTTP {err.code}: {err.read()[:200]!r}") from err
        except (urllib.error.URLError, json.JSONDecodeError) as err:
            raise LLMJudgeError(f"{self.base_url}/chat/completions: {err}") from err
        try:
            return str(data["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError) as err:
            raise LLMJudgeError(f"{self.base_url}: unexpected response {str(data)[:200]}") from err

    def match(self, texts: Sequence[str], targets: Sequence[str]) -> list[bool]:
        """For each text, does its style match the target emotion?"""
        out = []
        for text, emotion in zip(texts, targets):
            answer = self.ask(self.question.format(emotion=emotion, text=text)).strip().lower()
            word = re.match(r"[a-z]+", answer)
            if word and word.group() in ("yes", "no"):
                out.append(word.group() == "yes")
            else:
                self.unparsed += 1
                out.append(False)
        return out


JUDGE_SPECS = ("learned", "learned-minilm", "learned:DIR", "style", "lexicon", "classifier:NAME_OR_DIR", "llm")
"""What :func:`make_judge` (and ``--judge`` on the command line) accepts."""

DEFAULT_JUDGE = "learned"
"""The judge every command uses unless told otherwise (chosen by measurement on the judge set's dev
split; see the README's judge section)."""

RECOMMENDED_JUDGES: dict[str, str] = {
    # the toy model was trained on text the emotion-word lexicon labels; its notion of emotion *is* that
    # lexicon, so its tables are judged by it (the learned judge reads its terse replies differently)
    "toy": "lexicon",
    # the default head reads replies through SmolLM2 itself; on SmolLM2's own (steered) replies the head that
    # reads through MiniLM keeps judge and subject apart (it meets the same final-split targets)
    "smollm2-135m": "learned-minilm",
}
"""Model name -> the judge spec to use with that model when ``--judge`` is not given."""


def recommended_judge(model_name: str | None) -> str:
    """The judge spec for ``model_name`` (any name :func:`~circuits.core.sev.recommendation_key` knows)
    when none is given: its entry of :data:`RECOMMENDED_JUDGES`, else :data:`DEFAULT_JUDGE`."""
    from circuits.core.sev import recommendation_key

    return RECOMMENDED_JUDGES.get(str(recommendation_key(model_name)), DEFAULT_JUDGE)


JUDGE_MODES = ("label", "match")
"""``label``: a reply is a hit when the judge's 7-way verdict is the target emotion. ``match``: when
the judge's probability of the target is at least its match threshold (the paper's binary
style-match question; an LLM judge always answers that way)."""


class ThresholdMatch:
    """A label judge asked the binary question: does a text match its target emotion? Yes when the
    judge's probability of the target is at least ``threshold`` (default: the judge's own
    ``match_threshold``, chosen on the judge set's dev split)."""

    def __init__(self, judge: Any, threshold: float | None = None):
        if not hasattr(judge, "probabilities"):
            raise JudgeSpecError(
                f"judge {judge_name(judge)} gives no probabilities: the match mode needs the "
                "learned, style or lexicon judge (an LLM judge always answers yes / no)"
            )
        self.judge = judge
        self.threshold = float(judge.match_threshold if threshold is None else threshold)
        self.name = f"{judge_name(judge)} (match: P >= {self.threshold:.2f})"

    def scores(self, texts: Sequence[str], targets: Sequence[str]) -> list[float]:
        """P(target) of each text."""
        return [p[t] for p, t in zip(self.judge.probabilities(list(texts)), targets, strict=True)]

    def match(self, texts: Sequence[str], targets: Sequence[str]) -> list[bool]:
        return [s >= self.threshold for s in self.scores(texts, targets)]


def make_judge(spec: str = DEFAULT_JUDGE, device: str = "cpu", mode: str = "label") -> Any:
    """Build a judge from a short spec: ``learned`` (the shipped learned judge: SmolLM2's mid-layer
    residual + style features, :class:`~circuits.judges.learned.LearnedJudge`), ``learned-minilm`` (the
    shipped head on the MiniLM encoder's layers + style features: it reads no model under study),
    ``learned:DIR`` (one trained with
    ``emocircuits judge train``), ``style`` (the style lexicon), ``lexicon`` (the original emotion-word
    lexicon), ``classifier:NAME_OR_DIR`` (:class:`ClassifierJudge` with the default label map) or
    ``llm`` (:class:`LLMJudge`, configured from the environment). ``mode`` is one of
    :data:`JUDGE_MODES`: ``match`` wraps a label judge in :class:`ThresholdMatch`."""
    if not isinstance(spec, str) or not spec.strip():
        raise JudgeSpecError(f"judge: expected a spec string, one of {' | '.join(JUDGE_SPECS)}, got {spec!r}")
    if not isinstance(mode, str) or mode not in JUDGE_MODES:
        raise JudgeSpecError(f"judge mode must be one of {' | '.join(JUDGE_MODES)}, got {mode!r}")
    if not isinstance(device, str) or not device.strip():
        raise JudgeSpecError(f"judge device: expected a device name such as 'cpu' or 'cuda', got {device!r}")
    judge = _make(spec, device)
    return ThresholdMatch(judge) if mode == "match" and not hasattr(judge, "match") else judge


def _make(spec: str, device: str) -> Any:
    from circuits.judges.lexicon import lexicon_judge

    if spec == "lexicon":
        return lexicon_judge()
    from circuits.judges.learned import SHIPPED_HEADS, LearnedJudge, shipped_judge, style_judge

    if spec == "style":
        return style_judge()
    if spec in SHIPPED_HEADS:
        return shipped_judge(device, spec)
    if spec.startswith("learned:") and spec.split(":", 1)[1]:
        return LearnedJudge(spec.split(":", 1)[1])
    if spec.startswith("classifier:") and spec.split(":", 1)[1]:
        return ClassifierJudge(spec.split(":", 1)[1], device=device)
    if spec == "llm":
        return LLMJudge()
    raise JudgeSpecError(f"unknown judge {spec!r}: expected one of {' | '.join(JUDGE_SPECS)}")


def default_judge_instance(model_name: str | None = None) -> Any:
    """The judge used when none is given: :func:`recommended_judge` of ``model_name`` (the model whose
    replies it reads; ``None``: :data:`DEFAULT_JUDGE`)."""
    return make_judge(recommended_judge(model_name))


def judge_name(judge: Any) -> str:
    """A short description of a judge for reports: ``lexicon``, ``classifier:NAME``, ``llm:MODEL``."""
    from circuits.judges.lexicon import LexiconJudge
    from circuits.judges.lexicon import judge as lexicon_function

    if judge is None:
        return DEFAULT_JUDGE
    if judge is lexicon_function:
        return "lexicon"
    if isinstance(judge, LexiconJudge):
        return judge.name
    if isinstance(judge, ClassifierJudge):
        return f"classifier:{judge.name}"
    if isinstance(judge, LLMJudge):
        return f"llm:{judge.model}"
    if isinstance(judge, ThresholdMatch):
        return judge.name
    return str(getattr(judge, "name", None) or getattr(judge, "__name__", None) or type(judge).__name__)


def judge_matches(
    judge: Any, texts: Sequence[str], targets: Sequence[str], instructions: Sequence[Sequence[str]] | None = None
) -> tuple[list[bool], list[str]]:
    """Does each text express its target emotion? Works with every judge: a label judge (called on
    the texts, returns verdicts with ``.label``) or a binary style-match judge (with ``.match``, as
    :class:`LLMJudge`). Returns ``(hits, verdicts)``; a match judge's verdicts are the target or
    ``"no match"``. ``instructions`` (one list of instruction texts per text): sentences that only
    echo an instruction are removed before judging (:func:`circuits.judges.echo.strip_echo`)."""
    from circuits.judges.echo import strip_echoes

    if len(texts) != len(targets):
        raise ValueError(f"{len(texts)} texts but {len(targets)} targets")
    texts = strip_echoes(texts, instructions)
    if hasattr(judge, "match"):
        hits = [bool(h) for h in judge.match(list(texts), list(targets))]
        verdicts = [t if h else "no match" for h, t in zip(hits, targets)]
    else:
        verdicts = [v.label for v in judge(list(texts))]
        if len(verdicts) != len(texts):
            raise ValueError(f"judge returned {len(verdicts)} verdicts for {len(texts)} texts")
        hits = [v == t for v, t in zip(verdicts, targets)]
    return hits, verdicts


@dataclass(frozen=True)
class JudgedReplies:
    """Verdicts on a batch of replies, the fluency check applied first (:func:`judge_replies`).

    ``verdicts``: :data:`~circuits.judges.fluency.BROKEN` for a broken reply, else the judge's verdict;
    ``hits``: the reply is fluent and judged as its target (**fluent accuracy** counts these);
    ``raw_verdicts`` / ``raw_hits``: the judge's, as if no check ran (raw accuracy); ``broken``: the
    check's flags; ``reasons``: why each broken reply is broken (empty for fluent ones)."""

    hits: list[bool]
    verdicts: list[str]
    raw_hits: list[bool]
    raw_verdicts: list[str]
    broken: list[bool]
    reasons: list[list[str]]


def judge_replies(
    judge: Any,
    texts: Sequence[str],
    targets: Sequence[str],
    instructions: Sequence[Sequence[str]] | None = None,
    fluency: Any = "default",
) -> JudgedReplies:
    """Judge ``texts`` against ``targets`` as :func:`judge_matches` does, after the fluency check: a
    broken reply's verdict is :data:`~circuits.judges.fluency.BROKEN` and it is never a hit.
    ``fluency``: a :class:`~circuits.judges.fluency.FluencyCheck`, ``"default"``
    (:func:`~circuits.judges.fluency.default_fluency_check`) or ``None`` (no check: every reply
    fluent). The check reads the texts as written (echoes of the instruction are removed only for
    the judge)."""
    from circuits.judges.fluency import BROKEN, resolve_fluency

    raw_hits, raw_verdicts = judge_matches(judge, texts, targets, instructions)
    check = resolve_fluency(fluency, None)
    reasons = check.reasons(list(texts)) if check is not None else [[] for _ in texts]
    broken = [bool(r) for r in reasons]
    return JudgedReplies(
        hits=[h and not b for h, b in zip(raw_hits, broken)],
        verdicts=[BROKEN if b else v for v, b in zip(raw_verdicts, broken)],
        raw_hits=raw_hits,
        raw_verdicts=raw_verdicts,
        broken=broken,
        reasons=reasons,
    )


def judged_labels(judge: Any, texts: Sequence[str], fluency: Any = "default") -> list[str]:
    """A label judge's verdict on each text after the fluency check: :data:`~circuits.judges.fluency.BROKEN`
    for a broken text, else the judge's label (``fluency`` as in :func:`judge_replies`)."""
    from circuits.judges.fluency import BROKEN, resolve_fluency

    check = resolve_fluency(fluency, None)
    broken = check.broken(list(texts)) if check is not None else [False] * len(texts)
    labels = [j.label for j in judge(list(texts))]
    return [BROKEN if b else v for v, b in zip(labels, broken)]


def judge_reads_through(judge: Any) -> str | None:
    """The model whose internal states a learned judge's features come from: its head's encoder
    (``smollm2-135m`` for ``learned``, ``all-MiniLM-L6-v2`` for ``learned-minilm``), or None for judges
    that read no model's states (the lexicons, a style-only head) or whose model is not known here (a
    classifier, an LLM over an API)."""
    inner = judge.judge if isinstance(judge, ThresholdMatch) else judge
    cfg = getattr(inner, "config", None)
    if cfg is not None and getattr(cfg, "features", "style") != "style" and getattr(cfg, "encoder", ""):
        return str(cfg.encoder)
    return None


def judge_subject(judge: Any, model_name: str) -> dict[str, Any]:
    """Which model the judge reads through, and whether that is ``model_name``, the model under study
    (then a :class:`UserWarning` says so: steering changes that model's text, and the judge reads the
    text through the same model's unsteered states). Recorded in every evaluation as ``judge_subject``."""
    import warnings

    through = judge_reads_through(judge)
    same = through is not None and through == model_name
    if same:
        warnings.warn(
            f"the judge reads replies through {through}, the model being steered: its verdicts share that "
            "model's representations (use a judge that reads through another model, e.g. --judge "
            "learned-minilm, and compare)",
            stacklevel=2,
        )
    return {"reads_through": through, "is_subject": same}
