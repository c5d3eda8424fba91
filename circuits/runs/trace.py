"""``trace``: per-token emotion scores of a reply (generated, steered or not) or of a given text, as a
self-contained HTML view (:mod:`circuits.steer.trace`).

    emocircuits trace --model smollm2-135m --run runs/smol-full --prompt "My flight was cancelled." \\
        --method circuit --emotion anger --strength 1 --out trace.html
    emocircuits trace --model smollm2-135m --run runs/smol-full --text "I can't believe they did this." --out t.html
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from circuits.core.artifacts import write_json_atomic, write_text_atomic
from circuits.core.model import ModelHandle

TRACE_METHODS = ("none", "prompting", "direction", "emotion_vector", "circuit")


def run_trace(model: ModelHandle, run_dir: str | Path, *, prompt: str | None = None, text: str | None = None,
              method: str = "none", emotion: str | None = None, strength: float | None = None,
              positions: str = "paper", max_new_tokens: int = 48, direction_source: str = "sev") -> dict[str, Any]:
    """The trace of ``prompt`` (the user turn of a chat: neutral prompt, or the emotion prompt for
    ``method="prompting"``, or the neutral prompt steered by ``method`` toward ``emotion`` at ``strength``,
    default the method's evaluation default) or of ``text``, on the run's directions."""
    from circuits.core.emotions import check_emotions
    from circuits.core.artifacts import InputError
    from circuits.runs.evaluate import check_run_dir, direction_source as load_directions, method_factories, \
        run_prompts
    from circuits.steer.evaluate import EvalConfig
    from circuits.steer.trace import trace_generation, trace_text

    if (prompt is None) == (text is None):
        raise InputError("trace: give exactly one of --prompt (generate a reply) or --text (read a given text)")
    if method not in TRACE_METHODS:
        raise InputError(f"trace: --method {method!r}: expected one of {', '.join(TRACE_METHODS)}")
    if method != "none" and not emotion:
        raise InputError(f"trace: --method {method} needs --emotion")
    run = check_run_dir(run_dir)
    dirs = load_directions(run, direction_source)
    ivs: list = []
    if method in ("direction", "emotion_vector", "circuit"):
        (e,) = check_emotions([emotion])
        cfg = EvalConfig(methods=(method,), positions=positions, direction_source=direction_source)
        factories, _ = method_factories(model, run, cfg, [e])
        ivs = factories[method](e, cfg.strength(method) if strength is None else strength)
    if text is not None:
        res = trace_text(model, text, dirs, ivs)
    else:
        settings = run_prompts(run)
        chat = settings.chat(emotion if method == "prompting" else None, prompt)
        res = trace_generation(model, model.chat_ids(*chat), dirs, ivs, max_new_tokens=max_new_tokens)
    res.update(method=method, emotion=emotion, strength=strength, positions=positions, model=model.name,
               direction_source=direction_source)
    return res


def _trace(args: argparse.Namespace) -> int:
    from circuits.cli import _check_model_args, _load
    from circuits.steer.trace import trace_html

    _check_model_args(args)
    res = run_trace(_load(args), args.run, prompt=args.prompt, text=args.text, method=args.method,
                    emotion=args.emotion, strength=args.strength, positions=args.positions,
                    max_new_tokens=args.max_new_tokens, direction_source=args.direction_source)
    what = "text" if args.text is not None else f"reply ({args.method}" + (
        f", {args.emotion}" if args.emotion else "") + ")"
    meta = (f"model {res['model']}; {what}; directions: {res['direction_source']} of {args.run}; "
            f"{len(res['tokens']) - res['n_prompt']} tokens")
    out = Path(args.out)
    write_text_atomic(out, trace_html(res, f"Emotion trace: {res['model']}", meta, emotion=args.emotion))
    write_json_atomic(out.with_suffix(".json"), res)
    print(f"reply: {res['reply']}")
    print(f"wrote {out} (open in a browser) and {out.with_suffix('.json')}")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    from circuits.cli import _model_args

    p = sub.add_parser("trace", help="per-token emotion scores of a (steered) reply or a text, as an HTML view")
    _model_args(p)
    p.add_argument("--run", required=True, help="a discovery run directory (its directions, and circuits to steer)")
    p.add_argument("--prompt", default=None, help="a user message: generate the reply and trace it")
    p.add_argument("--text", default=None, help="a text to read and trace (no generation)")
    p.add_argument("--method", default="none", choices=TRACE_METHODS, help="steering of the reply (default none)")
    p.add_argument("--emotion", default=None, help="the emotion to steer or prompt toward (and shown first)")
    p.add_argument("--strength", type=float, default=None, help="alpha or lambda (default: evaluate's default)")
    p.add_argument("--positions", default="paper", choices=("paper", "last"))
    p.add_argument("--direction-source", default="sev", choices=("sev", "concept"))
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--out", required=True, help="the HTML file to write (the scores go to the same name .json)")
    p.set_defaults(func=_trace)
