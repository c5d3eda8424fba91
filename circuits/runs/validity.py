"""``validity``: does a run's emotion representation encode an emotional state or the instruction's word?

    emocircuits validity --run runs/demo                          # toy or SmolLM2 run, defaults
    emocircuits validity --run runs/demo --stance-run runs/demo-stance --steer-limit 2

Reads the prompts of the four sets (:data:`circuits.core.elicitation.ELICITATIONS`; explicit and stance on
``limit`` SEV scenarios of each split, event and story rows of both sides), computes the statistics of
:mod:`circuits.discovery.cross_elicitation` and the verdict per layer band, and steers on the same SEV test items
with the directions of each set (and the circuits of the run and of ``--stance-run``, a discovery run
made with ``--prompt-family stance``), each against a random control of equal norm. Everything goes to
``RUN/validity/`` as one folder swap: ``validity.json``, ``validity.md`` and the directions of each set
(``directions_{set}.*``, :class:`~circuits.discovery.directions.Directions` whose ``prompts`` name the
prompt family).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from circuits.core.artifacts import InputError, staged_dir, write_json_atomic, write_text_atomic
from circuits.core.config import check_config, help_field
from circuits.core.elicitation import ELICITATIONS, load_implicit
from circuits.core.model import ModelHandle
from circuits.core.ownership import check_folder_target
from circuits.core.sev import DEFAULT_TEST, DEFAULT_TRAIN, PromptSettings, load_sev
from circuits.runs import layout
from circuits.runs.rundir import Run

SIDES = ("dev", "final")
POINTS = {"attn": "resid_mid", "mlp": "resid_post"}


@dataclass(frozen=True)
class ValidityConfig:
    """Options of :func:`run_validity`."""

    limit: int = help_field(8, "SEV scenarios of each split for the explicit and stance prompts", min=1)
    texts_per_emotion: int | None = help_field(
        None, "rows per emotion and side of the event and story sets (None: all)", min=1
    )
    point: str = help_field("mlp", "read point of the probes and cosines", choices=tuple(POINTS))
    seeds: int = help_field(20, "label permutations of each null", min=2)
    seed: int = help_field(0, "first seed (permutations and random controls)", min=0)
    bands: int = help_field(3, "layer bands of the verdict table", min=1)
    batch_size: int = help_field(16, "prompts per forward pass", min=1)
    steer_limit: int = help_field(1, "SEV test scenarios of the steering check (0: no steering)", min=0)
    direction_alpha: float | None = help_field(
        None, "direction steering strength (x residual RMS; default: the run's evaluation's, else 8)", min=0
    )
    circuit_lambda: float | None = help_field(
        None, "circuit modulation strength (x Delta-mu; default: the run's evaluation's, else 1)", min=0
    )
    positions: str | None = help_field(
        None,
        "where steering acts: paper or last (default: the run's evaluation's, else paper)",
        choices=("paper", "last"),
    )
    max_new_tokens: int = help_field(32, "tokens per steered reply", min=1)

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_prompts(
    settings: PromptSettings, name: str, side: str, emotions: Sequence[str], cfg: ValidityConfig
) -> tuple[PromptSettings, list[tuple[str, str]], list[str], list[str]]:
    """One side of one set: its prompt settings, ``(system, user)`` chats, emotion labels and
    cross-validation groups (SEV sets: the scenario; event and story: the theme)."""
    if name in ("explicit", "stance"):
        ps = replace(settings, prompt_family=name, implicit_split=side if name == "stance" else settings.implicit_split)
        data = load_sev(DEFAULT_TRAIN if side == "dev" else DEFAULT_TEST, limit=cfg.limit)
        items = data.items(list(emotions))
        return (
            ps,
            [ps.chat(it.emotion, it.user_text) for it in items],
            [str(it.emotion) for it in items],
            [it.skeleton_id for it in items],
        )
    ps = replace(settings, prompt_family=name)
    rows, count = [], {e: 0 for e in emotions}
    for item in load_implicit(name, side):
        if item.emotion in count and (cfg.texts_per_emotion is None or count[item.emotion] < cfg.texts_per_emotion):
            count[item.emotion] += 1
            rows.append(item)
    return ps, [ps.chat(r.emotion, r.text) for r in rows], [r.emotion for r in rows], [r.theme for r in rows]


@torch.no_grad()
def read_prompts(
    model: ModelHandle, prompts: Sequence[Sequence[int]], batch_size: int, desc: str, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(residuals [n, 2 read points, n_layers, d_model], tokens [n, d_model])``: the last-token residual
    after attention and after the block, and the mean input embedding of each prompt's tokens."""
    from circuits.discovery.store import last_token_activations

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = torch.empty(len(prompts), 2, model.arch.n_layers, model.arch.d_model)
    for b in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress):
        idx = order[b : b + batch_size]
        acts = last_token_activations(model, [prompts[i] for i in idx], names=tuple(POINTS.values()))
        out[idx] = torch.stack([acts[POINTS[p]] for p in POINTS], 1)
    embed = model.bridge.W_E.detach().float().cpu()
    tokens = torch.stack([embed[torch.tensor(list(p))].mean(0) for p in prompts])
    return out, tokens


def word_vectors(model: ModelHandle, emotions: Sequence[str]) -> torch.Tensor:
    """``[n_emotions, 2, d_model]``: each emotion name's input embedding and unembedding (the mean over
    the tokens of `` name``), each centred over the emotions."""
    embed = model.bridge.W_E.detach().float().cpu()
    unembed = model.W_U.detach().float().cpu()
    rows = []
    for e in emotions:
        ids = model.tokenizer(" " + e, add_special_tokens=False)["input_ids"] or model.tokenizer(e)["input_ids"]
        rows.append(torch.stack([embed[ids].mean(0), unembed[:, ids].mean(1)]))
    w = torch.stack(rows)
    return w - w.mean(0, keepdim=True)


def _directions(model: ModelHandle, x: torch.Tensor, y: torch.Tensor, emotions: Sequence[str], settings, groups):
    from circuits.discovery.cross_elicitation import centred, class_differences
    from circuits.discovery.directions import Directions

    diff = torch.stack([class_differences(centred(x[:, p]), y, len(emotions)) for p in range(2)])
    unit = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return Directions(tuple(emotions), unit, diff, len(set(groups)), model.fingerprint, settings.to_dict())


def _steer_arm(model, test, interventions, emotions, settings, judge, cfg, progress) -> dict[str, Any]:
    """One steering arm on the SEV test items: fluent accuracy with its Wilson interval."""
    from circuits.core.stats import wilson_interval
    from circuits.steer.metrics import EvalConfig, evaluate_methods

    method = "neutral" if interventions is None else "direction"
    ecfg = EvalConfig(methods=(method,), emotions=tuple(emotions), max_new_tokens=cfg.max_new_tokens, examples=1)
    res = evaluate_methods(
        model,
        test,
        {} if interventions is None else {"direction": interventions},
        ecfg,
        settings,
        judge,
        progress=progress,
    )["methods"][method]
    hits = round(res["accuracy"] * res["n"])
    return {
        "accuracy": res["accuracy"],
        "interval": list(wilson_interval(hits, res["n"])),
        "raw_accuracy": res["raw_accuracy"],
        "broken_share": res["broken_share"],
        "n": res["n"],
        "per_emotion": res["per_emotion"],
        "example": (res.get("examples") or [None])[0],
    }


def steering_strengths(run: Run, cfg: ValidityConfig, n_layers: int) -> dict[str, Any]:
    """The strengths, positions and direction layers of the steering check: those given in ``cfg``, else
    those the run's evaluation used (its swept choice where it swept), else the evaluation defaults."""
    from circuits.steer.methods import default_direction_layers
    from circuits.steer.metrics import EvalConfig

    evaluation = run.evaluation or {}
    used = evaluation.get("config") if isinstance(evaluation.get("config"), dict) else {}
    base = EvalConfig()

    def pick(name: str, default: Any) -> Any:
        given = getattr(cfg, name)
        return given if given is not None else used.get(name, default)

    layers = used.get("direction_layers") or default_direction_layers(n_layers)
    return {
        "direction_alpha": float(pick("direction_alpha", base.direction_alpha)),
        "circuit_lambda": float(pick("circuit_lambda", base.circuit_lambda)),
        "positions": str(pick("positions", base.positions)),
        "layers": [int(L) for L in layers],
        "strengths_from": "the run's evaluation" if used else "the evaluation defaults",
    }


def steering_check(
    model: ModelHandle,
    run: Run,
    directions: dict[str, Any],
    emotions: Sequence[str],
    settings: PromptSettings,
    cfg: ValidityConfig,
    *,
    judge: Any = None,
    stance_run: Run | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Steering on ``cfg.steer_limit`` SEV test scenarios (neutral prompt): no steering (the floor);
    direction steering with each set's directions and with random unit directions (equal norm: every
    direction is a unit vector scaled by ``alpha * RMS``); circuit modulation with the run's circuits (and
    ``stance_run``'s), each against the same circuit on random units of equal number and Delta-mu."""
    from circuits.runs.evaluate import random_circuit
    from circuits.steer.methods import circuit_modulation, direction_steering

    test = load_sev(DEFAULT_TEST, limit=cfg.steer_limit)
    how = steering_strengths(run, cfg, model.arch.n_layers)
    layers, alpha, lam, where = how["layers"], how["direction_alpha"], how["circuit_lambda"], how["positions"]
    base = replace(settings, prompt_family="explicit")
    arms: dict[str, Any] = {"no steering": _steer_arm(model, test, None, emotions, base, judge, cfg, progress)}
    g = torch.Generator().manual_seed(cfg.seed)
    noise = torch.randn(directions["explicit"].unit.shape, generator=g)
    random_dirs = replace(directions["explicit"], unit=noise / noise.norm(dim=-1, keepdim=True))
    for name, dirs in [*directions.items(), ("random", random_dirs)]:
        arms[f"direction: {name}"] = _steer_arm(
            model,
            test,
            lambda e, d=dirs: direction_steering(d, e, layers, alpha, model, where),
            emotions,
            base,
            judge,
            cfg,
            progress,
        )
    for name, source in (("explicit", run), ("stance", stance_run)):
        if source is None:
            continue
        found = source.circuits(model=model, emotions=emotions)
        for label, circuits in (
            (name, found),
            (f"{name} random", {e: random_circuit(c, cfg.seed) for e, c in found.items()}),
        ):
            arms[f"circuit: {label}"] = _steer_arm(
                model,
                test,
                lambda e, c=circuits: circuit_modulation(c[e], model, lam=lam, positions=where),
                emotions,
                base,
                judge,
                cfg,
                progress,
            )
    return {
        "arms": arms,
        **how,
        "n_scenarios": len(test),
        "circuits_from_stance": stance_run is not None,
    }


def check_stance_run(stance_run: str | os.PathLike | None, model: ModelHandle | None = None) -> Run | None:
    """The ``--stance-run`` as a :class:`Run`: a discovery run whose prompts are the stance prompt family
    (:class:`InputError` naming the flag otherwise)."""
    if stance_run is None:
        return None
    run = Run(stance_run)
    family = run.prompts.prompt_family
    if family != "stance":
        raise InputError(
            f"--stance-run {stance_run}: its prompts are the {family!r} prompt family; give a run made with "
            "`emocircuits discover --prompt-family stance`"
        )
    if model is not None and run.summary.get("model", {}).get("fingerprint") not in (None, model.fingerprint):
        raise InputError(f"--stance-run {stance_run}: made with another model than --run's")
    return run


def validity_target(run: Run, out: str | os.PathLike | None) -> Path:
    """``out``, or ``RUN/validity/`` when ``out`` is None; an existing folder must hold nothing but an
    earlier check's files (:data:`~circuits.runs.layout.VALIDITY_FILES`), since the check replaces it whole."""
    target, flag = (run.file(layout.VALIDITY_DIR), "--run") if out is None else (Path(out), "--out")
    check_folder_target(target, flag)
    layout.check_own_folder(target, layout.VALIDITY_FILES, flag, "validity check")
    return target


def run_validity(
    model: ModelHandle,
    run_dir: str | os.PathLike,
    cfg: ValidityConfig | None = None,
    *,
    judge: Any = None,
    stance_run: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The whole check for one discovery run (module docstring); returns what ``validity.json`` holds."""
    from circuits.discovery.cross_elicitation import VERDICT_RULE, SetFeatures, band_verdicts, validity_stats
    from circuits.judges.base import default_judge_instance, judge_name

    cfg = cfg or ValidityConfig()
    run = Run(run_dir)
    target = validity_target(run, out)
    stance = check_stance_run(stance_run, model)
    settings = run.prompts
    emotions = list(run.directions().emotions)
    sets: dict[tuple[str, str], SetFeatures] = {}
    dev_acts: dict[str, tuple] = {}
    p = list(POINTS).index(cfg.point)
    for name in ELICITATIONS:
        for side in SIDES:
            ps, chats, labels, groups = set_prompts(settings, name, side, emotions, cfg)
            missing = [e for e in emotions if e not in labels]
            if missing:
                raise InputError(f"the {name} set's {side} side has no row for {', '.join(missing)}")
            x, tokens = read_prompts(
                model, [model.chat_ids(*c) for c in chats], cfg.batch_size, f"validity {name} {side}", progress
            )
            y = torch.tensor([emotions.index(e) for e in labels])
            sets[(name, side)] = SetFeatures(name, side, x[:, p], tokens, y, groups)
            if side == "dev":
                dev_acts[name] = (x, y, ps, groups)
    stats = validity_stats(sets, emotions, words=word_vectors(model, emotions), seeds=cfg.seeds, seed=cfg.seed)
    directions = {n: _directions(model, x, y, emotions, ps, g) for n, (x, y, ps, g) in dev_acts.items()}
    judge = judge or (default_judge_instance(model.name) if cfg.steer_limit else None)
    steering = (
        steering_check(
            model, run, directions, emotions, settings, cfg, judge=judge, stance_run=stance, progress=progress
        )
        if cfg.steer_limit
        else None
    )
    result = {
        "model": model.describe(),
        "run": str(run.path),
        "stance_run": str(stance.path) if stance else None,
        "config": cfg.to_dict(),
        "prompts": {n: d.prompts for n, d in directions.items()},
        "judge": judge_name(judge) if judge is not None else None,
        "stats": stats,
        "bands": band_verdicts(stats, cfg.bands),
        "rule": VERDICT_RULE,
        "steering": steering,
    }
    with staged_dir(target, flag="--out") as tmp:
        write_json_atomic(tmp / layout.VALIDITY_JSON, result)
        write_text_atomic(tmp / layout.VALIDITY_MD, validity_markdown(result))
        for name, d in directions.items():
            d.save(tmp / f"{layout.VALIDITY_DIRECTIONS}_{name}")
    return result


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def validity_header(result: dict[str, Any]) -> list[str]:
    """Header of :func:`verdict_table`."""
    sets = list(result["stats"]["forward"])
    head = ["layers", "explicit read (null p95)"] + [f"{s}: forward / reverse / cosine (null p95)" for s in sets]
    return head + ["supporting", "verdict"]


def verdict_table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the verdict table: band, explicit read (vs null), per implicit set forward / reverse /
    cosine (each with its null's 95th percentile), supporting sets, verdict."""
    rows = []
    for b in result["bands"]:
        lo, hi = b["layers"]
        cells = [f"{lo}-{hi}", f"{_pct(b['within'])} ({_pct(b['within_null_p95'])})"]
        for d in b["sets"].values():
            cells.append(
                f"{_pct(d['forward'])} ({_pct(d['forward_null_p95'])}) / {_pct(d['reverse'])} "
                f"({_pct(d['reverse_null_p95'])}) / {d['cosine']:+.2f} ({d['cosine_null_p95']:+.2f})"
            )
        cells += [", ".join(b["supporting"]) or "none", b["verdict"]]
        rows.append(cells)
    return rows


def interval_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: per band and implicit set, the forward and reverse transfer accuracy with a 95%
    Wilson interval on the test side's ``n`` (the band mean read as a share of ``n``) and the null's bar."""
    from circuits.discovery.cross_elicitation import accuracy_interval

    stats = result["stats"]
    sets = list(stats["forward"])
    head = ["layers"] + [f"{s} {way} (n)" for s in sets for way in ("forward", "reverse")]
    rows = []
    for b in result["bands"]:
        cells = [f"{b['layers'][0]}-{b['layers'][1]}"]
        for s in sets:
            for way in ("forward", "reverse"):
                acc, n = b["sets"][s][way], stats[way][s]["n_test"]
                lo, hi = accuracy_interval(acc, n)
                cells.append(
                    f"{_pct(acc)} [{_pct(lo)}, {_pct(hi)}] ({n}); null {_pct(b['sets'][s][way + '_null_p95'])}"
                )
        rows.append(cells)
    return head, rows


def steering_rows(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the steering table: arm, fluent accuracy [95% interval], broken share, n."""
    steering = result.get("steering")
    if not steering:
        return []
    return [
        [
            name,
            f"{_pct(a['accuracy'])} [{_pct(a['interval'][0])}, {_pct(a['interval'][1])}]",
            _pct(a["broken_share"]),
            str(a["n"]),
        ]
        for name, a in steering["arms"].items()
    ]


def report_data(result: dict[str, Any], file: str) -> dict[str, Any]:
    """The run report's ``validity`` section (:func:`circuits.figures.report_page.validity_tables`) from
    what ``validity.json`` holds (``file``: where it was read or is written)."""
    steering = result.get("steering") or {}
    return {
        "file": file,
        "header": validity_header(result),
        "rows": verdict_table(result),
        "intervals": interval_table(result),
        "rule": result["rule"],
        "n": dict(result["stats"]["n"]),
        "seeds": result["stats"]["seeds"],
        "point": result["config"]["point"],
        "judge": result.get("judge"),
        "steering_rows": steering_rows(result),
        "steering": {k: v for k, v in steering.items() if k != "arms"},
    }


def validity_markdown(result: dict[str, Any]) -> str:
    """``validity.md``: the run report's tables (verdict per band, transfer intervals, steering) with the
    rule, then the lexical baselines (token-identity probe, word-plane share)."""
    from circuits.figures.report_page import Table, validity_tables

    stats = result["stats"]
    sets = list(stats["forward"])
    verdicts, intervals, *steering = validity_tables(report_data(result, layout.VALIDITY_JSON))
    lines = [
        f"# Emotion state or instruction word? ({result['model']['name']})",
        "",
        f"Run `{result['run']}`; chance {_pct(stats['chance'])}. Rows: "
        + ", ".join(f"{k} {v}" for k, v in stats["n"].items())
        + ".",
        "",
        verdicts.markdown(),
        "",
        f"Rule: {result['rule']}",
        "",
        intervals.markdown(),
        "",
    ]
    tok = stats["tokens"]
    lines.append(
        f"Token identities alone (mean input embedding): explicit {_pct(tok['within'])} cross-validated; forward "
        + ", ".join(f"{s} {_pct(tok['forward'][s])}" for s in sets)
        + "; reverse "
        + ", ".join(f"{s} {_pct(tok['reverse'][s])}" for s in sets)
        + "."
    )
    share = stats.get("word_share")
    if share:
        bands = [tuple(b["layers"]) for b in result["bands"]]
        rows = [
            [name]
            + [
                f"{sum(share[name]['matched'][lo : hi + 1]) / (hi - lo + 1):.3f} / "
                f"{sum(share[name]['mismatched'][lo : hi + 1]) / (hi - lo + 1):.3f}"
                for lo, hi in bands
            ]
            for name in share
            if name != "random"
        ]
        table = Table(
            "table-validity-words",
            ["set"] + [f"layers {lo}-{hi}" for lo, hi in bands],
            rows,
            "Share of each direction in its own emotion word's plane (embedding + unembedding), band means, "
            f"matched / mismatched (a random direction: {share['random']:.3f}).",
        )
        lines += ["", table.markdown()]
    if steering:
        note = (
            ""
            if result["steering"]["circuits_from_stance"]
            else " No stance run was given: no circuit found on stance prompts."
        )
        lines += ["", steering[0].markdown() + note]
    return "\n".join(lines) + "\n"
