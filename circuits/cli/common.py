"""What every command shares: config flags generated from dataclasses, the model, run, prompt, emotion
and judge flags, and loading what they name (after every input has been checked)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import replace
from typing import Any, Callable, Sequence

from circuits.core.config import check_number, check_template, field_default, field_flag, field_type
from circuits.core.gguf import PACKAGED_MODELS
from circuits.judges.base import DEFAULT_JUDGE, JUDGE_MODES, JUDGE_SPECS

Handler = Callable[[argparse.Namespace], int]
"""A sub-command: parsed flags in, exit status out."""

PROMPT_FLAGS = (
    "placement",
    "user_instruction",
    "instruction_position",
    "emotion_system",
    "neutral_system",
    "prompt_family",
    "implicit_split",
)
"""The :class:`~circuits.core.sev.PromptSettings` fields given as flags."""


def add_config_flags(parser: Any, cls: type, names: Sequence[str]) -> None:
    """Add ``--{name}`` (underscores as dashes, or the field's ``flag`` metadata) for each field in
    ``names`` of the dataclass ``cls``, with the field's default, type and help. Booleans that default
    to False are switches; those that default to True get ``--no-...`` as well.

    >>> from circuits.core.config import help_field
    >>> @dataclasses.dataclass(frozen=True)
    ... class C:
    ...     k: int = help_field(4, "units per layer")
    >>> p = argparse.ArgumentParser(); add_config_flags(p, C, ["k"])
    >>> config_from_args(C, p.parse_args(["--k", "8"]), ["k"])
    C(k=8)
    """
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for name in names:
        f = by_name[name]
        meta = dict(f.metadata)
        flag = field_flag(f)
        default = field_default(f)
        elem, many, _ = field_type(hints[name])
        shown = " ".join(map(str, default)) if many and default is not None else default
        help_text = (
            meta.get("help", "") if meta.get("required") else f"{meta.get('help', '')} (default: {shown})".strip()
        )
        kw: dict[str, Any] = {"dest": name, "help": help_text.replace("%", "%%")}
        if elem is bool:
            if default:
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=True, **kw)
            else:
                parser.add_argument(flag, action="store_true", **kw)
            continue
        kw.update(type=elem, default=list(default) if many and default is not None else default)
        if many:
            kw["nargs"] = "+"
        if "choices" in meta:
            kw["choices"] = list(meta["choices"])
        if "metavar" in meta:
            kw["metavar"] = meta["metavar"]
        if meta.get("required"):
            kw["required"] = True
        parser.add_argument(flag, **kw)


def config_from_args(cls: type, args: argparse.Namespace, names: Sequence[str], **overrides: Any) -> Any:
    """The dataclass ``cls`` from parsed flags of :func:`add_config_flags` (sequences become tuples);
    ``overrides`` win."""
    hints = typing.get_type_hints(cls)
    values = {}
    for name in names:
        v = getattr(args, name)
        if field_type(hints[name])[1] and v is not None:
            v = tuple(v)
        values[name] = v
    values.update(overrides)
    return cls(**values)


def model_args(p: argparse.ArgumentParser, default: str | None = "toy") -> None:
    """The model flags; ``default=None``: the model of the command's ``--run`` (its summary.json)."""
    shown = default if default is not None else "the model the --run directory was made on"
    p.add_argument(
        "--model",
        default=default,
        help=f"hub name, local directory, .gguf file, a packaged model ({', '.join(PACKAGED_MODELS)}) "
        f"or 'toy' (default: {shown})",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    p.add_argument("--device-map", default=None, help="e.g. 'auto' to spread a large model over GPUs")
    p.add_argument("--no-thinking", action="store_true", help="chat template enable_thinking=False (Qwen3)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads of torch (default: torch's choice, one per core). With two jobs on one "
        "machine give each fewer threads than cores: oversubscribed threads slow CPU "
        "generation by an order of magnitude",
    )


def run_command(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    func: Handler,
    *,
    run_help: str = "a discovery run directory",
    model: bool = True,
) -> argparse.ArgumentParser:
    """The sub-command ``name`` over one discovery run: the model flags (unless ``model=False``), a
    required ``--run`` and its handler ``func``; the caller adds the command's own flags."""
    p = sub.add_parser(name, help=help)
    if model:
        model_args(p, default=None)
    p.add_argument("--run", required=True, help=run_help)
    p.set_defaults(func=func)
    return p


def emotions_arg(p: argparse.ArgumentParser) -> None:
    """``--emotions``: a subset of the run's emotions (default: all of them); check with
    :func:`circuits.core.emotions.check_emotions` against the run."""
    p.add_argument(
        "--emotions",
        nargs="+",
        default=None,
        metavar="EMOTION",
        help="a subset of the run's emotions (default: all of them)",
    )


def prompt_args(p: argparse.ArgumentParser) -> None:
    """The :class:`~circuits.core.sev.PromptSettings` flags; unset ones take the model's recommended
    prompt (:func:`circuits.core.sev.recommended_prompts`: the paper's, or what was measured to work)."""
    from circuits.core.sev import PromptSettings

    group = p.add_argument_group("prompts (unset: the model's recommended prompt; see `emocircuits prompts`)")
    add_config_flags(group, PromptSettings, PROMPT_FLAGS)
    p.set_defaults(**{name: None for name in PROMPT_FLAGS})


def prompt_settings(args: argparse.Namespace) -> Any:
    """The :class:`~circuits.core.sev.PromptSettings` of :func:`prompt_args`: the given flags over the
    model's recommended prompt. ``--neutral-system`` must hold no placeholder (it is sent as it is:
    an ``{emotion}`` there would reach the model literally); ``--prompt-family`` must be SEV-shaped
    (``explicit`` or ``stance``: the commands that take these flags build SEV prompts)."""
    from circuits.core.sev import recommended_prompts

    given = {name: getattr(args, name) for name in PROMPT_FLAGS if getattr(args, name, None) is not None}
    for name, required in (
        ("emotion_system", ("emotion",)),
        ("user_instruction", ("emotion",)),
        ("neutral_system", ()),
    ):
        if name in given:
            check_template(given[name], "--" + name.replace("_", "-"), required=required)
    settings = replace(recommended_prompts(args.model), **given)
    settings.check_sev_shaped("--prompt-family")
    return settings


def judge_arg(p: argparse.ArgumentParser, what: str, modes: bool = True) -> None:
    """``--judge SPEC`` (and ``--judge-mode`` unless ``modes=False``): the judge of ``what``."""
    p.add_argument(
        "--judge",
        default=None,
        metavar="SPEC",
        help=f"judge of {what}: {' | '.join(JUDGE_SPECS)} (llm: EMOCIRCUITS_JUDGE_URL, "
        f"EMOCIRCUITS_JUDGE_MODEL, EMOCIRCUITS_JUDGE_KEY from the environment); default "
        f"{DEFAULT_JUDGE} (lexicon for the toy model, whose notion of emotion is that lexicon)",
    )
    if not modes:
        return
    p.add_argument(
        "--judge-mode",
        default="label",
        choices=JUDGE_MODES,
        help="label: a hit is a 7-way verdict equal to the target emotion; match: the judge's "
        "probability of the target reaches its match threshold (the paper's yes / no question)",
    )


def judge_from_args(args: argparse.Namespace) -> Any:
    """The judge of :func:`judge_arg` (unset: the model's recommended judge, written back to ``args.judge``)."""
    from circuits.judges.base import make_judge, recommended_judge

    if args.judge is None:
        args.judge = recommended_judge(getattr(args, "model", None))
    return make_judge(
        args.judge, device=getattr(args, "device", None) or "cpu", mode=getattr(args, "judge_mode", "label")
    )


def check_model_args(args: argparse.Namespace) -> None:
    """Refuse a device or dtype this machine cannot use, or ``--threads`` below 1, before anything is
    loaded or written; an unset ``--model`` of a run command becomes the run's own model."""
    from circuits.core.model import check_dtype

    if getattr(args, "model", "") is None:
        from circuits.runs.rundir import Run

        args.model = Run(args.run).model_name
    check_device_flag(args)
    check_dtype(args.dtype)
    if getattr(args, "threads", None) is not None:
        check_number(args.threads, "--threads", int, min=1)


def check_device_flag(args: argparse.Namespace, flag: str = "--device") -> None:
    """Refuse ``args.device`` when torch cannot use it on this machine (``cuda`` without a CUDA GPU, a
    typo): the one device check of every command's ``--device``, run before anything loads."""
    from circuits.core.artifacts import InputError
    from circuits.core.model import check_device

    try:
        check_device(args.device)
    except InputError as err:
        raise InputError(f"{flag}: {err}") from None


def check_output_files(args: argparse.Namespace, *dests: str) -> None:
    """Refuse, before anything loads, output-file flags (``dests``: their ``args`` names) that cannot be
    written: a path naming a folder, a folder that does not exist, or two flags naming the same file
    (the second write would replace the first). The message names the flag(s) and the path."""
    from pathlib import Path

    from circuits.core.artifacts import InputError

    seen: dict[Path, str] = {}
    for dest in dests:
        value = getattr(args, dest, None)
        if not value:
            continue
        flag = "--" + dest.replace("_", "-")
        path = Path(value).expanduser().resolve()
        if path.is_dir():
            raise InputError(f"{flag} {value}: is a folder; expected a file name")
        if not path.parent.is_dir():
            raise InputError(f"{flag} {value}: the folder {path.parent} does not exist")
        if path in seen:
            raise InputError(f"{flag} {value}: the same file as {seen[path]}; give each output its own path")
        seen[path] = flag


def check_run_model(model: Any, run: Any) -> None:
    """Refuse a loaded ``model`` that is not the model the run ``run`` was made on (the fingerprint
    its ``summary.json`` records), whatever the methods: call it right after the model loads, before
    anything is read from the run or written. A summary recording no fingerprint is not checked here
    (the run's files are, as they load)."""
    from circuits.core.artifacts import InputError
    from circuits.runs.rundir import Run

    run = run if isinstance(run, Run) else Run(run, check=False)
    try:
        recorded = run.summary["model"]
        fingerprint, name = recorded.get("fingerprint"), recorded.get("name")
    except (InputError, KeyError, TypeError, AttributeError):
        return
    if fingerprint and str(fingerprint) != str(model.fingerprint):
        raise InputError(
            f"--model {model.name}: the run {run.path} was made on {name!r} (fingerprint {fingerprint}), this "
            f"model has fingerprint {model.fingerprint}; leave out --model to use the run's own model"
        )


def out_folder(path: Any, flag: str = "--out") -> Any:
    """A context manager holding the writer lock of the output folder ``path`` for the whole command
    (:func:`circuits.core.ownership.owned`), taken before the model loads: ``path`` naming an existing
    file, or a folder another process is writing, is refused at once (``InputError`` naming ``flag``)."""
    from circuits.core.ownership import check_folder_target, owned

    return owned(check_folder_target(path, flag), flag)


def load_model_from_args(args: argparse.Namespace) -> Any:
    """The model of :func:`model_args` (``--threads`` set first; checked by :func:`check_model_args`)."""
    from circuits.core.model import load_model

    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    return load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        device_map=args.device_map,
        chat_template_kwargs={"enable_thinking": False} if args.no_thinking else None,
    )


def load_run_model(args: argparse.Namespace) -> Any:
    """:func:`load_model_from_args`, then :func:`check_run_model` against ``args.run``."""
    model = load_model_from_args(args)
    check_run_model(model, args.run)
    return model
