"""The SEV dataset (Scenario-Event with Valence): validating loader, items and prompt settings.

A SEV file is JSONL (one object per line; a JSON array of the same objects also loads) with::

    {"theme": str, "scenario": str,
     "event": {"positive": str, "neutral": str, "negative": str},
     "skeleton_id": str}

Extra keys are ignored; an integer ``skeleton_id`` is read as its decimal string. Every problem is
reported with file, line and field (:class:`SEVFormatError` lists them all).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from circuits.core.artifacts import InputError
from circuits.core.config import ConfigError, check_config, check_template, help_field
from circuits.core.elicitation import ELICITATIONS, SEV_ELICITATIONS, stance_for, stance_instructions
from circuits.core.emotions import EMOTIONS, VALENCES, check_emotions
from circuits.core.readers import as_path, iter_lines, parse_json
from circuits.core.resources import data_path

DEFAULT_TRAIN = data_path("sev_train")
DEFAULT_TEST = data_path("sev_test")


class SEVFormatError(InputError):
    """A SEV file does not follow the schema; ``errors`` holds one message per problem."""

    def __init__(self, path: Path, errors: list[str]):
        self.path = path
        self.errors = errors
        first = errors[0] if errors else "not a SEV file"
        more = (
            f" (and {len(errors) - 1} more problem(s): `emocircuits sev validate {path}` lists them all)"
            if len(errors) > 1
            else ""
        )
        super().__init__((first if first.startswith(str(path)) else f"{path}: {first}") + more)


@dataclass(frozen=True)
class Scenario:
    """One SEV line: a neutral first-person situation and its three outcome events."""

    theme: str
    scenario: str
    events: dict[str, str]
    skeleton_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "theme": self.theme,
            "scenario": self.scenario,
            "event": dict(self.events),
            "skeleton_id": self.skeleton_id,
        }


@dataclass(frozen=True)
class SEVItem:
    """One (scenario, valence, emotion) unit. ``emotion`` is None for the neutral-prompt setting."""

    skeleton_id: str
    theme: str
    scenario: str
    valence: str
    event: str
    emotion: str | None

    @property
    def user_text(self) -> str:
        """The user turn: scenario and event on two lines."""
        return f"{self.scenario}\n{self.event}"

    @property
    def group(self) -> tuple[str, str]:
        """The (scenario, valence) group over which emotions are centred."""
        return (self.skeleton_id, self.valence)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PLACEMENTS = ("system", "user", "both")
"""Where the emotion instruction goes: the system prompt (the paper), the user turn, or both."""

INSTRUCTION_POSITIONS = ("before", "after")
"""Where in the user turn the instruction goes, relative to the SEV scenario and event."""


@dataclass(frozen=True)
class PromptSettings:
    """The prompts of the emotion-conditioned and the neutral setting.

    Defaults are the paper's: the instruction ``emotion_system`` is the system prompt and the user turn
    is the bare SEV scenario. ``placement="user"`` keeps the neutral system prompt and puts
    ``user_instruction`` into the user turn instead (``instruction_position`` before or after the
    scenario, separated by a blank line); ``"both"`` does both. Small instruct models follow an
    instruction in the user turn far better than in the system prompt (``emocircuits prompts``
    measures it). ``{emotion}`` in a wording is replaced by the emotion's name (``anger``, ...).

    ``prompt_family`` names the elicitation, the prompt family (:data:`~circuits.core.elicitation.ELICITATIONS`):
    ``explicit`` (the default) names the emotion as above; ``stance`` sends, in the same place, a stance
    instruction that never names it (``circuits/data/implicit/stance.jsonl``, the ``implicit_split``
    side; :func:`~circuits.core.elicitation.stance_for` picks one per SEV text), followed by the
    neutral system text where it goes into the system prompt; ``event`` and ``story`` send the text as
    the user turn with the neutral system prompt and no instruction (the text itself evokes the
    emotion: an implicit set's row, not a SEV scenario). Stores, directions, circuits and evaluations
    record these fields with the rest.
    """

    emotion_system: str = help_field(
        "Always reply in {emotion}.\nKeep the reply to at most two sentences.",
        "system prompt of the emotion setting ({emotion}: the emotion's name)",
    )
    neutral_system: str = help_field(
        "Keep the reply to at most two sentences.",
        "system prompt of the neutral setting (and of every setting when the instruction goes in the user turn)",
    )
    placement: str = help_field("system", "where the emotion instruction goes", choices=PLACEMENTS)
    user_instruction: str = help_field(
        "Write your reply so that it is full of {emotion}.", "instruction in the user turn (placement user / both)"
    )
    instruction_position: str = help_field(
        "before", "instruction before or after the SEV text in the user turn", choices=INSTRUCTION_POSITIONS
    )
    prompt_family: str = help_field(
        "explicit",
        "prompt family: explicit names the emotion; stance sends a stance instruction that never names it; "
        "event / story: the text alone, no instruction (emocircuits validity)",
        choices=ELICITATIONS,
    )
    implicit_split: str = help_field(
        "dev",
        "side of the stance set the stance instructions come from (prompt family stance)",
        choices=("dev", "final"),
    )

    def __post_init__(self) -> None:
        check_config(self)
        for name in ("emotion_system", "user_instruction"):
            check_template(getattr(self, name), f"PromptSettings.{name}", required=("emotion",))
        if "{emotion}" in self.neutral_system:  # sent as it is: a placeholder there would reach the model
            raise ConfigError(
                f"PromptSettings.neutral_system: the neutral prompt is sent as written and may not hold "
                f"{{emotion}}, got {self.neutral_system!r}"
            )

    @property
    def instructed(self) -> bool:
        """Whether the emotion setting adds an instruction (``explicit`` and ``stance``); ``event`` and
        ``story`` prompts are the text alone."""
        return self.prompt_family in ("explicit", "stance")

    def check_sev_shaped(self, what: str) -> None:
        """:class:`InputError` when ``what`` (a job built on SEV scenarios) is asked for an ``event`` or
        ``story`` prompt family, whose texts replace the SEV scenario (``emocircuits validity`` reads them)."""
        if self.prompt_family not in SEV_ELICITATIONS:
            raise InputError(
                f"{what}: prompt family {self.prompt_family!r} sends an implicit set's text instead of a SEV "
                f"scenario; use explicit or stance here (emocircuits validity reads the {self.prompt_family} set)"
            )

    def _instruction(self, emotion: str, user: str, where: str) -> str:
        if self.prompt_family == "stance":
            stance = stance_for(emotion, user, self.implicit_split)
            return f"{stance}\n{self.neutral_system}" if where == "system" else stance
        return (self.emotion_system if where == "system" else self.user_instruction).format(emotion=emotion)

    def system_for(self, emotion: str | None, user: str = "") -> str:
        """System text for an emotion (its instruction where the placement puts one there), or the
        neutral text for ``None`` (and for ``event`` / ``story``). ``user``: the SEV text, which picks
        the stance instruction (``stance``)."""
        if emotion is None or self.placement == "user" or not self.instructed:
            return self.neutral_system
        return self._instruction(emotion, user, "system")

    def user_for(self, emotion: str | None, user: str) -> str:
        """The user turn: the SEV text, with the emotion's instruction where the placement puts one."""
        if emotion is None or self.placement == "system" or not self.instructed:
            return user
        instruction = self._instruction(emotion, user, "user")
        return f"{instruction}\n\n{user}" if self.instruction_position == "before" else f"{user}\n\n{instruction}"

    def chat(self, emotion: str | None, user: str) -> tuple[str, str]:
        """``(system, user)`` of the chat for ``emotion`` (None: neutral) and the SEV user text (for
        ``event`` / ``story``: the implicit text, sent alone whatever ``emotion``)."""
        return self.system_for(emotion, user), self.user_for(emotion, user)

    def instructions(self, emotion: str, user: str | None = None) -> tuple[str, ...]:
        """The instruction texts the model sees for ``emotion`` (what a reply may echo). For ``stance``
        without ``user``: every stance instruction of the emotion on the ``implicit_split`` side; for
        ``event`` / ``story``: none."""
        if not self.instructed:
            return ()
        if self.prompt_family == "stance" and user is None:
            return stance_instructions(self.implicit_split)[emotion]
        out = []
        if self.placement != "user":
            out.append(self._instruction(emotion, user or "", "system"))
        if self.placement != "system":
            out.append(self._instruction(emotion, user or "", "user"))
        return tuple(out)

    def describe(self) -> str:
        """One line for reports: the prompt family, where the instruction goes and its wording."""
        if self.prompt_family in ("event", "story"):
            return f"no instruction: the user turn is a text of the implicit {self.prompt_family} set"
        if self.prompt_family == "stance":
            where = {"system": "system prompt", "user": f"user turn ({self.instruction_position} the scenario)"}
            place = where.get(self.placement, f"system prompt and {where['user']}")
            return f"a stance instruction that never names the emotion ({self.implicit_split} side) in the {place}"
        if self.placement == "system":
            return f"system prompt {self.emotion_system!r}"
        where = f"user turn ({self.instruction_position} the scenario) {self.user_instruction!r}"
        return where if self.placement == "user" else f"system prompt {self.emotion_system!r} and {where}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PromptSettings":
        """Settings from a dict; stores written before placements existed read as the paper's system placement."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


RECOMMENDED_PROMPTS: dict[str, dict[str, str]] = {
    # measured with `emocircuits prompts --limit 4` on the train split (72 replies per candidate, lexicon
    # judge): the paper's system prompt 2.8%, this wording before the scenario in the user turn 47.2%
    "smollm2-135m": {"placement": "user", "user_instruction": "Write your reply so that it is full of {emotion}."},
    # measured by the filer (not re-run in this repository's history), `emocircuits prompts --limit 2`
    # (36 replies per candidate, learned judge): the paper's system prompt 5.6%, "Write your reply so that
    # it is full of {emotion}." 16.7%, this wording 22.2%
    "qwen2.5-coder-0.5b": {"placement": "user", "user_instruction": "Reply with strong {emotion}."},
}
"""Model name -> :class:`PromptSettings` fields that differ from the paper's, for models measured to
ignore the paper's system prompt (``emocircuits prompts`` measured each entry on the train split)."""


def recommendation_key(model_name: str | None) -> str | None:
    """The key of ``model_name`` in the recommended judge and prompt tables: ``"toy"`` for the toy model
    however it is named (``toy``; the shipped folder's path, which a run's ``summary.json`` records,
    also as recorded on another machine: ``.../toy/model``; a folder of ``emocircuits toy train``,
    which holds ``train_log.json``), else the name itself."""
    if model_name is None or model_name == "toy":
        return model_name
    path = Path(model_name)
    if path.parts[-2:] == ("toy", "model"):
        return "toy"
    try:
        if (path / "train_log.json").is_file() and (path / "config.json").is_file():
            return "toy"
    except (OSError, ValueError):
        pass
    return model_name


def recommended_prompts(model_name: str | None) -> PromptSettings:
    """The prompt settings to use with ``model_name`` (any name :func:`recommendation_key` knows) when
    none are given: its entry of :data:`RECOMMENDED_PROMPTS`, else the paper's."""
    return PromptSettings(**RECOMMENDED_PROMPTS.get(str(recommendation_key(model_name)), {}))


def _check_line(obj: Any, where: str) -> tuple[Scenario | None, list[str]]:
    errs: list[str] = []
    if not isinstance(obj, dict):
        return None, [f"{where}: expected a JSON object, got {type(obj).__name__}"]

    def text(field: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            errs.append(f"{where}: field '{field}': expected a non-empty string, got {value!r}")
            return ""
        return value.strip()

    for key in ("theme", "scenario", "event", "skeleton_id"):
        if key not in obj:
            errs.append(f"{where}: missing field '{key}'")
    sid = obj.get("skeleton_id")
    if isinstance(sid, int) and not isinstance(sid, bool):
        sid = str(sid)
    theme = text("theme", obj.get("theme")) if "theme" in obj else ""
    theme = " ".join(theme.lower().split())  # "Work/Job" and "work/job " are one theme
    scenario = text("scenario", obj.get("scenario")) if "scenario" in obj else ""
    sid = text("skeleton_id", sid) if "skeleton_id" in obj else ""
    events: dict[str, str] = {}
    ev = obj.get("event")
    if "event" in obj:
        if not isinstance(ev, dict):
            errs.append(
                f"{where}: field 'event': expected an object with keys {', '.join(VALENCES)}, got {type(ev).__name__}"
            )
        else:
            for v in VALENCES:
                if v not in ev:
                    errs.append(f"{where}: field 'event.{v}': missing")
                else:
                    events[v] = text(f"event.{v}", ev[v])
    if errs:
        return None, errs
    return Scenario(theme, scenario, events, sid), []


class SEVDataset:
    """A validated list of :class:`Scenario` read from one file.

    ``sha256`` is the hash of the file's bytes (stores and circuits record it).
    """

    def __init__(self, scenarios: list[Scenario], path: Path | None = None, sha256: str = ""):
        self.scenarios = scenarios
        self.path = path
        self.sha256 = (
            sha256 or hashlib.sha256(json.dumps([s.to_dict() for s in scenarios], sort_keys=True).encode()).hexdigest()
        )

    def __len__(self) -> int:
        return len(self.scenarios)

    @property
    def themes(self) -> list[str]:
        return sorted({s.theme for s in self.scenarios})

    def subset(self, limit: int | None) -> "SEVDataset":
        """The first ``limit`` scenarios taken round-robin over themes (in file order).

        Deterministic: ``limit=8`` on the shipped split gives the first scenario of each theme.
        ``None`` (or a limit >= the size) keeps everything.
        """
        limit = check_limit(limit)
        if limit is None or limit >= len(self.scenarios):
            return self
        by_theme: dict[str, list[Scenario]] = {}
        for s in self.scenarios:
            by_theme.setdefault(s.theme, []).append(s)
        picked: list[Scenario] = []
        rnd = 0
        while len(picked) < limit:
            for lst in by_theme.values():
                if rnd < len(lst) and len(picked) < limit:
                    picked.append(lst[rnd])
            rnd += 1
        order = {id(s): i for i, s in enumerate(self.scenarios)}
        picked.sort(key=lambda s: order[id(s)])
        digest = hashlib.sha256(f"{self.sha256}:limit={limit}".encode()).hexdigest()
        return SEVDataset(picked, self.path, digest)

    def items(
        self,
        emotions: Iterable[str] | None = None,
        *,
        neutral: bool = False,
        valences: Sequence[str] = VALENCES,
    ) -> list[SEVItem]:
        """Items for every (scenario, valence, emotion) in that order of nesting.

        ``neutral=True`` gives one item per (scenario, valence) with ``emotion=None`` (the neutral
        prompt setting) instead.
        """
        emos: tuple[str | None, ...] = (None,) if neutral else check_emotions(emotions)
        for v in valences:
            if v not in VALENCES:
                raise InputError(f"unknown valence {v!r}: expected one of {', '.join(VALENCES)}")
        return [
            SEVItem(s.skeleton_id, s.theme, s.scenario, v, s.events[v], e)
            for s in self.scenarios
            for v in valences
            for e in emos
        ]

    def summary(self) -> str:
        n = len(self.scenarios)
        return (
            f"{n} scenarios, {len(self.themes)} themes, {3 * n} (scenario, valence) pairs, "
            f"{3 * n * len(EMOTIONS)} emotion items"
        )


def _sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _first_char(path: Path) -> str:
    """The first non-whitespace character of a file (a BOM skipped), read in small chunks."""
    try:
        with open(path, "rb") as fh:
            head = b""
            while chunk := fh.read(4096):
                head = (head + chunk).lstrip(b"\xef\xbb\xbf \t\r\n")
                if head:
                    return chr(head[0])
    except OSError as err:
        raise SEVFormatError(path, [f"{path}: cannot read the file ({err.strerror or err})"]) from None
    return ""


def check_limit(limit: Any, name: str = "limit") -> int | None:
    """``limit`` as a positive whole number or None; a bool, a float (even ``2.0``), a string or a
    value below 1 raises :class:`InputError` naming ``name``."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"{name} must be a whole number >= 1 (or None for every scenario), got {limit!r}")
    return limit


class _LineError(InputError):
    """One problem of one SEV line (collected into :class:`SEVFormatError`)."""


def load_sev(path: str | Path | None = None, *, limit: int | None = None) -> SEVDataset:
    """Load and validate a SEV file (default: the shipped training split).

    Raises :class:`SEVFormatError` listing every problem as ``file:line: field: expected ...``,
    plus duplicate ``skeleton_id`` values, a missing or unreadable file, text that is not UTF-8 or
    JSON that cannot be read safely (lone surrogate escapes, oversized integers, deep nesting);
    :class:`InputError` for a ``limit`` that is not a whole number >= 1.
    """
    limit = check_limit(limit)
    p = as_path(path, "load_sev: path") if path is not None else DEFAULT_TRAIN
    if not p.is_file():
        raise SEVFormatError(p, [f"{p}: no such file" if not p.exists() else f"{p}: expected a file, found a folder"])
    errors: list[str] = []
    objects: list[tuple[str, Any]] = []

    def not_text(msg: str) -> SEVFormatError:
        return SEVFormatError(p, [msg])

    if _first_char(p) == "[":  # a JSON array is parsed whole; JSONL is streamed line by line
        text = "\n".join(line for _, line in iter_lines(p, error=not_text))
        arr = parse_json(text, str(p), error=not_text, allow_nan=True)
        if not isinstance(arr, list):
            raise SEVFormatError(p, [f"{p}: expected a JSON array of scenarios"])
        objects = [(f"{p}: entry {i}", o) for i, o in enumerate(arr)]
    else:
        for lineno, line in iter_lines(p, error=not_text):
            if not line.strip():
                continue
            try:
                objects.append((f"{p}:{lineno}", parse_json(line, f"{p}:{lineno}", error=_LineError, allow_nan=True)))
            except _LineError as err:
                errors.append(str(err))
    scenarios: list[Scenario] = []
    seen: dict[str, str] = {}
    for where, obj in objects:
        sc, errs = _check_line(obj, where)
        errors.extend(errs)
        if sc is not None:
            if sc.skeleton_id in seen:
                errors.append(
                    f"{where}: field 'skeleton_id': duplicate {sc.skeleton_id!r} (first at {seen[sc.skeleton_id]})"
                )
            seen[sc.skeleton_id] = where
            scenarios.append(sc)
    if not objects and not errors:
        errors.append(f"{p}: the file holds no scenarios")
    if errors:
        raise SEVFormatError(p, errors)
    try:
        digest = _sha256(p)
    except OSError as err:
        raise SEVFormatError(p, [f"{p}: cannot read the file ({err.strerror or err})"]) from None
    return SEVDataset(scenarios, p, digest).subset(limit)
