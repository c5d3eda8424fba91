"""Compare steering methods on held-out SEV items: accuracy, fluency (perplexity), distinct-2.

For every (scenario, valence, emotion) of the test split and every method, the model replies
(greedy; min/max new tokens, repetition penalty and no-repeat n-gram as in the paper); a judge labels
the reply; a method's accuracy is the share of replies judged as the target emotion.

Methods (names used in ``evaluation.json``):

* ``prompting``: the emotion system prompt, no steering;
* ``neutral``: the neutral prompt, no steering (the floor);
* ``direction``: neutral prompt + direction steering (``alpha * RMS(h) * v_e`` on a layer range);
* ``emotion_vector``: neutral prompt + Emotion Vectors (``alpha * EV_l`` at every layer);
* ``circuit``: neutral prompt + circuit modulation (``lam * Delta-mu`` on the circuit's units).

Perplexity: of the reply tokens under the unsteered model, given the target emotion's prompt (the
model's own notion of a fluent reply in that emotion); reported as the geometric mean over replies.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from circuits.core.emotions import EMOTIONS, VALENCES, check_emotions
from circuits.core.generate import GenerationSettings, generate
from circuits.core.hooks import Intervention, make_hooks
from circuits.core.artifacts import write_json_atomic, write_text_atomic
from circuits.judges.lexicon import judge as lexicon_judge
from circuits.judges.base import judge_matches, judge_name
from circuits.core.model import ModelHandle
from circuits.core.sev import PromptSettings, SEVDataset

METHODS = ("prompting", "neutral", "direction", "emotion_vector", "circuit")


@dataclass(frozen=True)
class EvalConfig:
    methods: tuple[str, ...] = METHODS
    emotions: tuple[str, ...] = EMOTIONS
    limit: int | None = None
    max_new_tokens: int = 48
    min_new_tokens: int = 10
    repetition_penalty: float = 1.1
    no_repeat_ngram_size: int = 3
    batch_size: int = 48
    circuit_lambda: float = 1.0
    direction_alpha: float = 8.0
    direction_layers: tuple[int, ...] | None = None
    """Recorded for the report; the interventions themselves are passed to :func:`evaluate_methods`."""
    ev_alpha: float = 2.0
    positions: str = "paper"
    """Recorded for the report: where the steering methods acted (``paper`` or ``last``)."""
    examples: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of the whitespace-tokenised texts (0 when there are none)."""
    grams = [tuple(t[i:i + n]) for t in (x.split() for x in texts) for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@torch.no_grad()
def reply_perplexity(model: ModelHandle, prompts: Sequence[list[int]], replies: Sequence[str],
                     batch_size: int = 32) -> list[float]:
    """Perplexity of each reply (plus end of turn) given its prompt, under the unsteered model."""
    tok = model.tokenizer
    seqs, n_prompt = [], []
    for p, r in zip(prompts, replies):
        ids = tok(r, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
        seqs.append(list(p) + ids)
        n_prompt.append(len(p))
    out = []
    for s in range(0, len(seqs), batch_size):
        chunk = seqs[s:s + batch_size]
        ids, mask = model.pad_left(chunk)
        logp = torch.log_softmax(model.hf_model(input_ids=ids, attention_mask=mask).logits.float(), -1)
        for row, seq in enumerate(chunk):
            width = ids.shape[1]
            start = width - len(seq) + n_prompt[s + row]
            tgt = ids[row, start:]
            lp = logp[row, start - 1:width - 1].gather(-1, tgt[:, None]).squeeze(-1)
            out.append(math.exp(-lp.mean().item()) if lp.numel() else float("nan"))
    return out


def evaluate_methods(
    model: ModelHandle,
    test: SEVDataset,
    interventions: dict[str, Callable[[str], list[Intervention]]],
    config: EvalConfig | None = None,
    settings: PromptSettings | None = None,
    judge: Callable[[list[str]], list[Any]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every method of ``config.methods``. ``interventions[method](emotion)`` gives the
    interventions of a steered method (methods ``prompting``/``neutral`` need none). Returns the
    ``evaluation.json`` object: ``{"methods": {name: {"accuracy", "per_emotion", "per_valence",
    "perplexity", "distinct_2", "n", "examples"}}, "config": ...}``."""
    cfg = config or EvalConfig()
    settings = settings or PromptSettings()
    judge = judge or lexicon_judge
    emotions = check_emotions(cfg.emotions)
    test = test.subset(cfg.limit)
    gen = GenerationSettings(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                             repetition_penalty=cfg.repetition_penalty)
    result: dict[str, Any] = {"methods": {}, "config": cfg.to_dict(), "judge": judge_name(judge),
                              "model": model.describe(),
                              "dataset": {"path": str(test.path), "sha256": test.sha256, "n_scenarios": len(test)}}
    for method in cfg.methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: expected some of {METHODS}")
        rows, replies, ppl_prompts = [], [], []
        for emotion in tqdm(emotions, desc=f"evaluate {method}", disable=not progress):
            items = test.items([emotion])
            system = settings.system_for(emotion if method == "prompting" else None)
            prompts = [model.chat_ids(system, it.user_text) for it in items]
            ivs = interventions[method](emotion) if method not in ("prompting", "neutral") else []
            outs = generate(model, prompts, gen, hooks=lambda idx, ivs=ivs: make_hooks(model, ivs), progress=False,
                            min_new_tokens=cfg.min_new_tokens, no_repeat_ngram_size=cfg.no_repeat_ngram_size)
            rows += items
            replies += outs
            ppl_prompts += [model.chat_ids(settings.system_for(emotion), it.user_text) for it in items]
        hit, verdicts = judge_matches(judge, replies, [it.emotion for it in rows])
        ppl = reply_perplexity(model, ppl_prompts, replies)
        per_emotion = {e: _mean([h for h, it in zip(hit, rows) if it.emotion == e]) for e in emotions}
        per_valence = {v: _mean([h for h, it in zip(hit, rows) if it.valence == v]) for v in VALENCES}
        finite = [p for p in ppl if math.isfinite(p)]
        examples = []
        for e in emotions:
            examples += [{"emotion": e, "valence": it.valence, "user": it.user_text, "reply": r, "judged": v}
                         for it, r, v in zip(rows, replies, verdicts) if it.emotion == e][: cfg.examples]
        result["methods"][method] = {
            "accuracy": _mean(hit), "per_emotion": per_emotion, "per_valence": per_valence,
            "perplexity": math.exp(sum(math.log(p) for p in finite) / len(finite)) if finite else float("nan"),
            "distinct_2": distinct_n(replies), "n": len(rows), "judged": dict(Counter(verdicts)), "examples": examples,
        }
    return result


def _mean(xs: Sequence[bool | float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def method_table(result: dict[str, Any]) -> str:
    """Plain-text table: method, accuracy, per-emotion accuracy, perplexity, distinct-2."""
    methods = result["methods"]
    emotions = list(next(iter(methods.values()))["per_emotion"]) if methods else []
    head = f"{'method':<16}{'accuracy':>9}" + "".join(f"{e[:7]:>9}" for e in emotions) + f"{'ppl':>8}{'dist-2':>8}"
    lines = [head]
    for name, m in methods.items():
        lines.append(f"{name:<16}{m['accuracy']:>9.1%}" + "".join(f"{m['per_emotion'][e]:>9.1%}" for e in emotions)
                     + f"{m['perplexity']:>8.2f}{m['distinct_2']:>8.2f}")
    return "\n".join(lines)


def write_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``evaluation.json``, ``evaluation.csv``, ``accuracy.html`` (plotly) and ``report.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json_atomic(out / "evaluation.json", result)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "emotion", "accuracy", "perplexity", "distinct_2"])
    for name, m in result["methods"].items():
        w.writerow([name, "all", m["accuracy"], m["perplexity"], m["distinct_2"]])
        for e, a in m["per_emotion"].items():
            w.writerow([name, e, a, "", ""])
    paths.append(write_text_atomic(out / "evaluation.csv", buf.getvalue()))
    try:
        import plotly.graph_objects as go

        fig = go.Figure()
        for name, m in result["methods"].items():
            fig.add_trace(go.Bar(name=name, x=list(m["per_emotion"]), y=list(m["per_emotion"].values())))
        fig.update_layout(barmode="group", title="Accuracy per emotion and method (judged as the target emotion)",
                          yaxis_title="accuracy", yaxis_range=[0, 1])
        paths.append(write_text_atomic(out / "accuracy.html", fig.to_html(include_plotlyjs="cdn")))
    except ImportError:  # pragma: no cover
        pass
    md = [f"# Steering evaluation: {result['model']['name']}", "",
          f"Test split `{result['dataset']['path']}` ({result['dataset']['n_scenarios']} scenarios x 3 valences x "
          f"{len(result['config']['emotions'])} emotions), greedy decoding, judge "
          f"`{result.get('judge', 'lexicon')}`; steering positions `{result['config'].get('positions', 'paper')}`.", "", "```",
          method_table(result), "```", "", "## Example generations", ""]
    for name, m in result["methods"].items():
        md.append(f"### {name}")
        md.append("")
        for ex in m["examples"]:
            md.append(f"- **{ex['emotion']}** ({ex['valence']}, judged {ex['judged']}): {ex['reply']}")
        md.append("")
    paths.append(write_text_atomic(out / "report.md", "\n".join(md)))
    return paths
