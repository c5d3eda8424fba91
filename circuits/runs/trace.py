"""``trace``: per-token emotion scores of a reply (generated, steered or not) or of a given text, as a
self-contained HTML view (:mod:`circuits.steer.token_trace`).

    emocircuits trace --model smollm2-135m --run runs/smol-full --prompt "My flight was cancelled." \\
        --method circuit --emotion anger --strength 1 --out trace.html
    emocircuits trace --model smollm2-135m --run runs/smol-full --text "I can't believe they did this." --out t.html
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from circuits.core.artifacts import write_json_atomic, write_text_atomic
from circuits.core.config import ConfigError, check_config, help_field
from circuits.core.model import ModelHandle
from circuits.core.ownership import owned

TRACE_METHODS = ("none", "prompting", "direction", "emotion_vector", "circuit")


@dataclass(frozen=True)
class TraceConfig:
    """How the traced reply is made: unsteered (``none``), prompted, or steered by a method of the run."""

    method: str = help_field("none", "steering of the reply", choices=TRACE_METHODS)
    emotion: str | None = help_field(None, "the emotion to steer or prompt toward (and shown first)")
    strength: float | None = help_field(None, "alpha or lambda; None: the method's evaluate default")
    positions: str = help_field(
        "paper", "paper: each method's published positions; last: the last prompt token only", choices=("paper", "last")
    )
    direction_source: str = help_field(
        "sev",
        "directions of direction steering and of the scores: sev or concept (emocircuits concepts)",
        choices=("sev", "concept"),
    )
    max_new_tokens: int = help_field(48, "tokens of the generated reply", min=1)

    def __post_init__(self) -> None:
        check_config(self)
        if self.method != "none" and not self.emotion:
            raise ConfigError(f"TraceConfig.emotion (--emotion): --method {self.method} needs an emotion")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_trace(
    model: ModelHandle,
    run_dir: str | Path,
    cfg: TraceConfig | None = None,
    *,
    prompt: str | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    """The trace of ``prompt`` (the user turn of a chat: neutral prompt, or the emotion prompt for
    ``method="prompting"``, or the neutral prompt steered by ``cfg.method`` toward ``cfg.emotion`` at
    ``cfg.strength``, default the method's evaluation default) or of ``text``, on the run's directions.
    The result holds the config's fields next to the tokens and scores."""
    from circuits.core.artifacts import InputError
    from circuits.core.emotions import check_emotions
    from circuits.runs.evaluate import method_factories
    from circuits.runs.rundir import Run
    from circuits.steer.metrics import EvalConfig
    from circuits.steer.token_trace import trace_generation, trace_text

    cfg = cfg or TraceConfig()
    if (prompt is None) == (text is None):
        raise InputError("trace: give exactly one of --prompt (generate a reply) or --text (read a given text)")
    run = Run(run_dir)
    dirs = run.directions(cfg.direction_source)
    ivs: list = []
    if cfg.method in ("direction", "emotion_vector", "circuit"):
        (e,) = check_emotions([cfg.emotion])
        ecfg = EvalConfig(methods=(cfg.method,), positions=cfg.positions, direction_source=cfg.direction_source)
        factories, _ = method_factories(model, run, ecfg, [e])
        ivs = factories[cfg.method](e, ecfg.strength(cfg.method) if cfg.strength is None else cfg.strength)
    if text is not None:
        res = trace_text(model, text, dirs, ivs)
    else:
        chat = run.prompts.chat(cfg.emotion if cfg.method == "prompting" else None, prompt)
        res = trace_generation(model, model.chat_ids(*chat), dirs, ivs, max_new_tokens=cfg.max_new_tokens)
    res.update(cfg.to_dict(), model=model.name)
    return res


def write_trace(res: dict[str, Any], out: str | Path, run_dir: str | Path, *, from_text: bool) -> tuple[Path, Path]:
    """Write the trace ``res`` of :func:`run_trace` as a self-contained HTML view at ``out`` and its scores
    as JSON next to it (same name, ``.json``); ``from_text``: it traced a given text, not a generated reply.
    Returns both paths."""
    what = "text" if from_text else f"reply ({res['method']}" + (f", {res['emotion']}" if res["emotion"] else "") + ")"
    meta = (
        f"model {res['model']}; {what}; directions: {res['direction_source']} of {run_dir}; "
        f"{len(res['tokens']) - res['n_prompt']} tokens"
    )
    out = Path(out)
    # a trace written into the run is written under the run's writer lock
    with owned(run_dir, "--out") if out.parent.resolve() == Path(run_dir).resolve() else contextlib.nullcontext():
        return _write_trace_files(res, out, meta)


def _write_trace_files(res: dict[str, Any], out: Path, meta: str) -> tuple[Path, Path]:
    from circuits.steer.token_trace import trace_html

    write_text_atomic(out, trace_html(res, f"Emotion trace: {res['model']}", meta, emotion=res["emotion"]))
    write_json_atomic(out.with_suffix(".json"), res)
    return out, out.with_suffix(".json")
