"""``trace``: per-token emotion scores of a reply (generated, steered or not) or of a given text, as a
self-contained HTML view (:mod:`circuits.steer.token_trace`).

    emocircuits trace --model smollm2-135m --run runs/smol-full --prompt "My flight was cancelled." \\
        --method circuit --emotion anger --strength 1 --out trace.html
    emocircuits trace --model smollm2-135m --run runs/smol-full --text "I can't believe they did this." --out t.html
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from circuits.core.artifacts import write_atomic_group
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
    out: str | Path | None = None,
) -> dict[str, Any]:
    """The trace of ``prompt`` (the user turn of a chat: neutral prompt, or the emotion prompt for
    ``method="prompting"``, or the neutral prompt steered by ``cfg.method`` toward ``cfg.emotion`` at
    ``cfg.strength``, default the method's evaluation default) or of ``text``, on the run's directions.
    The result holds the config's fields next to the tokens and scores. ``out`` (where
    :func:`write_trace` will write) is checked first (:func:`check_trace_out`)."""
    from circuits.core.artifacts import InputError
    from circuits.core.emotions import check_emotions
    from circuits.runs.evaluate import method_factories
    from circuits.runs.rundir import Run
    from circuits.steer.metrics import EvalConfig
    from circuits.steer.token_trace import trace_generation, trace_text

    cfg = cfg or TraceConfig()
    if out is not None:
        check_trace_out(out)
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


TRACE_HTML = "trace.html"
TRACE_JSON = "trace.json"
"""The pair's names when ``--out`` names a folder."""
_SCORE_KEYS = frozenset({"tokens", "n_prompt", "scores", "emotions", "method", "direction_source"})


def trace_files(out: str | Path) -> tuple[Path, Path]:
    """The HTML view and the scores JSON of a trace written to ``out``: ``out`` and ``out`` with ``.json``
    when ``out`` ends in ``.html``, else ``out/trace.html`` and ``out/trace.json`` (``out`` a folder)."""
    out = Path(out)
    if out.suffix.lower() == ".html":
        return out, out.with_suffix(".json")
    return out / TRACE_HTML, out / TRACE_JSON


def _is_trace_scores(path: Path) -> bool:
    """Whether ``path`` is the scores JSON of an earlier trace (a JSON object with a trace's keys)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and _SCORE_KEYS <= data.keys()


def check_trace_out(out: str | Path) -> None:
    """Refuse (:class:`~circuits.core.artifacts.InputError` naming ``--out``), before anything is computed,
    a trace that would overwrite files trace did not write: with ``out`` ending in ``.html``, an existing
    ``out`` or ``.json`` beside it that are not an earlier trace's pair (its scores JSON present and a
    trace's); with ``out`` a folder, one holding anything but ``trace.html`` and ``trace.json``."""
    from circuits.core.artifacts import InputError
    from circuits.core.ownership import check_folder_target
    from circuits.runs.layout import foreign_entries, shown_names

    out = Path(out)
    html, scores = trace_files(out)
    if html == out:
        if out.is_dir():
            raise InputError(f"--out {out}: is a folder; give the HTML file to write, or a folder without .html")
        if scores.is_dir() or (scores.exists() and not _is_trace_scores(scores)):
            raise InputError(
                f"--out {out}: the scores would go to {scores}, which exists and is not a trace's scores; "
                "choose another --out"
            )
        if out.exists() and not scores.exists():
            raise InputError(
                f"--out {out}: exists and is not a trace view (no {scores.name} of a trace beside it); "
                "choose another --out"
            )
        return
    check_folder_target(out, "--out")
    other = foreign_entries(out, (TRACE_HTML, TRACE_JSON))
    if other:
        raise InputError(
            f"--out {out}: holds files that are not a trace's ({shown_names(other)}); a trace replaces "
            "its folder whole, so give a new or empty folder, or one an earlier trace wrote"
        )


def write_trace(res: dict[str, Any], out: str | Path, run_dir: str | Path, *, from_text: bool) -> tuple[Path, Path]:
    """Write the trace ``res`` of :func:`run_trace`: a self-contained HTML view and its scores as JSON
    (:func:`trace_files`). ``out`` a folder: both go in as one swap
    (:func:`circuits.core.artifacts.staged_dir`); ``out`` a ``.html`` file: the scores go beside it (same
    name, ``.json``), both renamed into place together (:func:`~circuits.core.artifacts.write_atomic_group`). Files trace did not write are never
    replaced (:func:`check_trace_out`). ``from_text``: it traced a given text, not a generated reply.
    Returns both paths."""
    from circuits.core.artifacts import staged_dir

    check_trace_out(out)
    what = "text" if from_text else f"reply ({res['method']}" + (f", {res['emotion']}" if res["emotion"] else "") + ")"
    meta = (
        f"model {res['model']}; {what}; directions: {res['direction_source']} of {run_dir}; "
        f"{len(res['tokens']) - res['n_prompt']} tokens"
    )
    out = Path(out)
    html, scores = trace_files(out)
    # a trace written into the run is written under the run's writer lock
    into_run = html.parent.resolve() == Path(run_dir).resolve() or out.parent.resolve() == Path(run_dir).resolve()
    with owned(run_dir, "--out") if into_run else contextlib.nullcontext():
        check_trace_out(out)  # again, under the lock
        if html == out:
            return _write_trace_files(res, html, scores, meta)
        with staged_dir(out) as tmp:
            _write_trace_files(res, tmp / TRACE_HTML, tmp / TRACE_JSON, meta)
        return html, scores


def _write_trace_files(res: dict[str, Any], html: Path, scores: Path, meta: str) -> tuple[Path, Path]:
    from circuits.steer.token_trace import trace_html

    page = trace_html(res, f"Emotion trace: {res['model']}", meta, emotion=res["emotion"])
    write_atomic_group(
        {
            scores: lambda p: p.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8"),
            html: lambda p: p.write_text(page, encoding="utf-8"),
        }
    )
    return html, scores
