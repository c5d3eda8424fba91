"""``discover``: the whole circuit-discovery pipeline on one model, written to a run directory.

Steps (each is also a function of its own module): activation store -> emotion directions and their
context-agnosticism evidence -> direct logit attribution and logit lens -> neuron contributions and
head importance (one pass; the per-head ablation reference on a subset, with their rank agreement) ->
ablation / enhancement sweeps and the judged emotion of generations under both -> sublayer influence
(intervention measure on a subset and one-pass gradient estimate, with their rank agreement) ->
circuits (JSON + safetensors, EAP-style graph) -> figures -> ``summary.json``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file
from scipy.stats import spearmanr

from circuits.circuit.ablation_faithfulness import SPLITS as FAITHFULNESS_SPLITS
from circuits.circuit.allocation import AllocationConfig
from circuits.core.artifacts import InputError, staged_dir, write_atomic, write_json_atomic
from circuits.core.config import ConfigError, check_at_most, check_config, help_field
from circuits.core.emotions import EMOTIONS, check_emotions
from circuits.core.model import ModelHandle
from circuits.core.ownership import owned
from circuits.core.provenance import provenance
from circuits.core.sev import PromptSettings, SEVDataset
from circuits.discovery.ablation import MODES, SweepConfig
from circuits.discovery.influence import DEFAULT_ALPHAS
from circuits.discovery.store import READ_POINTS, StoreConfig, build_store
from circuits.runs import layout
from circuits.runs.layout import foreign_entries, shown_names, write_csv
from circuits.runs.report import write_run_report


class DiscoverInputError(InputError):
    """A discovery request that cannot give meaningful results: raised before anything is written, except
    for an elicitation that kept no row of an emotion (then only the judged store is kept, to resume from)."""


@dataclass(frozen=True)
class DiscoverConfig:
    """Options of :func:`discover` (``limit``: SEV scenarios; ``*_rows``: rows used by the slow
    reference measures, per emotion for heads and neutral rows for influence)."""

    limit: int | None = help_field(None, "use only N scenarios (deterministic subset)", min=1)
    emotions: tuple[str, ...] = help_field(EMOTIONS, "subset of the six emotions")
    batch_size: int = help_field(16, "prompts per forward pass", min=1)
    store_dtype: str = help_field(
        "float32", "storage dtype of the activation store", choices=("float32", "bfloat16", "float16")
    )
    elicitation: bool = help_field(False, "generate, judge and keep only accepted rows", flag="--elicit")
    reference_head_rows: int = help_field(
        24, "rows per emotion for the head-ablation reference", flag="--reference-rows", min=1
    )
    influence_rows: int = help_field(48, "neutral rows for the influence intervention", min=1)
    reference_layers: tuple[int, ...] | None = help_field(
        None,
        "layers of the slow references (per-head ablation, intervention influence); default: as many "
        "evenly spaced layers as --reference-budget allows",
        min=0,
    )
    reference_budget_s: float = help_field(
        120.0,
        "seconds for the slow references when --reference-layers is not given: one layer is timed, then "
        "as many evenly spaced layers as fit are measured (0 skips the references)",
        min=0,
        flag="--reference-budget",
    )
    alphas: tuple[float, ...] = help_field(
        DEFAULT_ALPHAS, "influence strengths (x sublayer RMS)", flag="--influence-alphas"
    )
    sweep_ks: tuple[int, ...] = help_field((1, 2, 4, 16), "numbers of top / random units per sweep", min=1)
    sweep_modes: tuple[str, ...] = help_field(
        SweepConfig.modes,
        "ablation (zero, mean) and enhancement (scale, add Delta-mu) modes of the sweeps",
        choices=MODES,
    )
    sweep_seeds: int = help_field(2, "random selections per sweep point", min=1)
    sweep_rows: int = help_field(12, "rows per emotion for ablation sweeps", min=1)
    sweep_layers: tuple[int, ...] | None = help_field(
        None, "layers of the ablation sweeps (default: --sweep-layer-count evenly spaced layers)", min=0
    )
    sweep_layer_count: int = help_field(
        4, "evenly spaced layers the sweeps use when --sweep-layers is not given (0: every layer)", min=0
    )
    generation_rows: int = help_field(6, "rows per emotion for judged generations under ablation (0 skips)", min=0)
    generation_k_neurons: int = 16
    generation_k_heads: int = 2
    generation_enhance: str | None = "add"
    """Enhancement in the judged generations: ``"add"`` (Delta-mu), ``"scale"`` or None (ablation only)."""
    generation_enhance_factor: float | None = None
    """lambda for ``"add"`` (default 1.0) or the factor for ``"scale"`` (default 2.0)."""
    generation_enhance_prompt: str = "neutral"
    """Prompt the enhanced generations use: ``"neutral"`` (can the units induce the emotion) or ``"emotion"``."""
    null_seeds: int = help_field(
        2, "permuted-label nulls of the probe (mlp read point) and the cross-context cosine (0 skips)", min=0
    )
    faithfulness_rows: int = help_field(24, "emotion-prompt rows per emotion for circuit faithfulness (0 skips)", min=0)
    faithfulness_seeds: int = help_field(3, "random circuits of equal size per layer for faithfulness", min=1)
    faithfulness_split: str = help_field(
        "test",
        "prompts the faithfulness scores: held-out SEV test items (test) or the store's own rows (train, in-sample)",
        choices=FAITHFULNESS_SPLITS,
    )
    faithfulness_judge_rows: int = help_field(
        4, "rows per emotion for judged generations under each faithfulness condition (0: emotion score only)", min=0
    )
    influence_method: str = "intervention"
    seed: int = help_field(0, "seed of every random choice")
    figures: bool = help_field(True, "draw the figures")
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    """Circuit budget and allocation (``--budget-per-sublayer``, ``--neuron-share``, ...)."""

    def __post_init__(self) -> None:
        check_config(self)
        if any(a == 0 for a in self.alphas):
            raise ConfigError(
                f"DiscoverConfig.alphas (--influence-alphas): strengths must be non-zero, got {self.alphas}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(spearmanr(a.flatten().numpy(), b.flatten().numpy())[0])


def _subset_rows(store, kind: str, per: int, emotions: Sequence[str] | None, seed: int) -> torch.Tensor:
    """A seeded subset: ``per`` neutral rows, or per emotion the accepted rows of the first (scenario,
    valence) groups in a seeded order that hold one, up to ``per`` rows. With complete groups every
    emotion takes the same ``per`` groups (the group structure is kept); groups left incomplete by
    elicitation make an emotion reach further down the order (or keep fewer rows, when it has fewer)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "neutral":
        idx = store.index("neutral")
        return idx[torch.randperm(len(idx), generator=g)[:per]].sort().values
    groups = sorted({store.rows[int(i)].group for i in store.index("emotion", accepted_only=False)})
    order = [groups[int(j)] for j in torch.randperm(len(groups), generator=g)]
    where: dict[tuple[tuple[str, str], str], int] = {
        (store.rows[int(i)].group, store.rows[int(i)].emotion): int(i) for i in store.index("emotion")
    }
    idx = []
    for e in emotions or store.emotions:
        idx += [where[(grp, e)] for grp in order if (grp, e) in where][:per]
    return torch.tensor(sorted(idx), dtype=torch.long)


def kept_rows(store: Any, emotions: Sequence[str]) -> dict[str, Any]:
    """What elicitation kept: accepted emotion rows in all and per emotion, of how many prompted, and the
    (scenario, valence) groups in which every emotion was kept."""
    rows = [r for r in store.rows if r.kind == "emotion" and r.emotion in emotions]
    by = {e: sum(r.accepted for r in rows if r.emotion == e) for e in emotions}
    groups: dict[tuple[str, str], int] = {}
    for r in rows:
        groups[r.group] = groups.get(r.group, 0) + int(r.accepted)
    return {
        "accepted": sum(by.values()),
        "prompted": len(rows),
        "by_emotion": by,
        "complete_groups": sum(n == len(emotions) for n in groups.values()),
        "groups": len(groups),
    }


def kept_line(kept: dict[str, Any]) -> str:
    """One line of :func:`kept_rows`."""
    per = ", ".join(f"{e} {n}" for e, n in kept["by_emotion"].items())
    return (
        f"kept {kept['accepted']} of {kept['prompted']} emotion rows ({per}); every emotion kept in "
        f"{kept['complete_groups']} of {kept['groups']} (scenario, valence) groups"
    )


def check_request(cfg: DiscoverConfig, dataset: SEVDataset, model_layers: int | None = None) -> tuple[str, ...]:
    """Refuse, before anything is loaded or written, a request that cannot give meaningful results
    (:class:`DiscoverInputError`); returns the checked emotions."""
    emotions = check_emotions(cfg.emotions)
    for name in ("reference_layers", "sweep_layers"):
        bad = [L for L in getattr(cfg, name) or () if model_layers is not None and L >= model_layers]
        if bad:
            raise DiscoverInputError(
                f"DiscoverConfig.{name} (--{name.replace('_', '-')}): layer(s) {bad} out of "
                f"range: the model has layers 0-{model_layers - 1}"
            )
    if len(emotions) < 2:
        raise DiscoverInputError(
            f"discovery needs at least 2 emotions (directions are centred over the "
            f"emotions of a scenario), got {list(emotions)}"
        )
    themes = {s.theme for s in dataset.subset(cfg.limit).scenarios}
    if len(themes) < 2:
        raise DiscoverInputError(
            f"discovery needs scenarios from at least 2 themes (directions are compared "
            f"across disjoint themes); limit={cfg.limit} on {dataset.path} gives "
            f"{sorted(themes)}: "
            + ("use --limit 2 or more" if len(dataset.themes) > 1 else "the file itself has a single theme")
        )
    return emotions  # the sweep modes, numbers and choices were checked by DiscoverConfig itself


DISCOVER_OUTPUTS = frozenset(
    {
        layout.STORE_DIR,
        f"{layout.DIRECTIONS}.json",
        f"{layout.DIRECTIONS}.safetensors",
        layout.EVIDENCE_JSON,
        layout.DLA_CSV,
        layout.LOGIT_LENS_CSV,
        layout.SCORES,
        layout.NEURONS_CSV,
        layout.HEADS_CSV,
        layout.SWEEPS_CSV,
        layout.ABLATION_GENERATIONS_JSON,
        layout.INFLUENCE_CSV,
        layout.CIRCUITS_DIR,
        layout.SUMMARY_JSON,
        layout.FIGURES_DIR,
        layout.REPORT_HTML,
    }
)
"""The entries a discover run writes at the top of its folder (``report.html`` included); a rerun remakes
them all, so they are not listed by :func:`foreign_outputs`."""
RUN_CACHES = frozenset({layout.EMOTION_VECTORS})
"""Caches other commands keep in a run, derived from its store alone (``evaluate`` computes the Emotion
Vectors once): a rerun drops them without asking, since they are remade from the same store on demand."""


def foreign_outputs(out_dir: str | os.PathLike) -> list[str]:
    """The entries of an existing ``out_dir`` that a discover run did not write (the outputs of
    ``evaluate``, ``concepts``, ``faithfulness``, ``dose-response``, ``atlas``, ``trace``, or anything
    else): a new discover run into ``out_dir`` replaces the whole folder and so would delete them. Folder
    names end with ``/``; sorted; empty when ``out_dir`` does not exist. :data:`RUN_CACHES` are not
    listed."""
    return foreign_entries(out_dir, DISCOVER_OUTPUTS | RUN_CACHES)


def check_rerun(out_dir: str | os.PathLike, replace: bool, flag: str = "--out") -> None:
    """Refuse (:class:`DiscoverInputError`, listing them) a discover run into ``out_dir`` that would delete
    outputs other commands wrote there (:func:`foreign_outputs`), unless ``replace``. Called by the CLI
    before the model loads, and by :func:`discover` itself."""
    if replace:
        return
    found = foreign_outputs(out_dir)
    if found:
        raise DiscoverInputError(
            f"{flag} {out_dir}: holds outputs that discover did not write and a new run would delete "
            f"({shown_names(found)}); give --replace to delete them, or choose another {flag}"
        )


def discover(
    model: ModelHandle,
    dataset: SEVDataset,
    out_dir: str | Path,
    config: DiscoverConfig | None = None,
    settings: PromptSettings | None = None,
    progress: bool = True,
    judge: Any = None,
    replace: bool = False,
) -> dict[str, Any]:
    """Run every step and write the run directory; returns the summary (also ``summary.json``).
    ``judge`` (default: the lexicon judge) judges the elicited replies and the generations under
    ablation / enhancement; any judge :func:`circuits.judges.base.judge_replies` accepts.

    The new run replaces ``out_dir`` whole, in one swap at the end; until then (and if it fails or is
    killed) the old run stays complete, store included. An ``out_dir`` holding outputs of other commands
    (an evaluation, concept directions, ...) is refused before anything is computed
    (:func:`check_rerun`) unless ``replace``."""
    cfg = config or DiscoverConfig()
    emotions = check_request(cfg, dataset, model.arch.n_layers)
    check_at_most(cfg, "sweep_ks", model.arch.d_mlp, f"{model.name}'s MLP width, the most units a sweep can pick")
    # results go to a staged folder that replaces ``out_dir`` only when the run completes; the store
    # (resumable, identity-checked) is given to it as hard links, so the old run keeps its own
    with owned(out_dir):  # the run's writer lock, held until its report is written too
        check_rerun(out_dir, replace)
        with staged_dir(out_dir, keep=(layout.STORE_DIR,)) as out:
            summary = _discover_into(model, dataset, out, Path(out_dir), cfg, emotions, settings, progress, judge)
        write_run_report(out_dir)
    return summary


class _Laps:
    """Wall time of each stage of :func:`discover`, in seconds (``summary.json`` ``timings_s``)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, name: str) -> None:
        self.timings[name] = round(time.perf_counter() - self._t, 2)
        self._t = time.perf_counter()


def _discover_into(
    model: ModelHandle,
    dataset: SEVDataset,
    out: Path,
    final: Path,
    cfg: DiscoverConfig,
    emotions: tuple[str, ...],
    settings: PromptSettings | None,
    progress: bool,
    judge: Any,
) -> dict[str, Any]:
    """The body of :func:`discover`, writing into ``out`` (the staged folder that becomes ``final``): one
    call per stage, in order (the seeded stages draw from the generator in this order)."""
    torch.manual_seed(cfg.seed)
    lap = _Laps()
    store, kept = _store_stage(model, dataset, out, cfg, emotions, settings, progress, judge, lap)
    dirs, evidence, pca = _directions_stage(store, out, cfg, emotions, lap)
    lens = _dla_stage(model, store, dirs, out, emotions, lap)
    neurons, heads = _unit_scores_stage(model, store, dirs, out, emotions, lap)
    sweeps = _sweeps_stage(model, store, dirs, neurons, heads, out, cfg, emotions, progress, lap)
    gen_effect = _generations_stage(model, store, neurons, heads, out, cfg, emotions, progress, judge, lap)
    chosen, influence_method, refs = _influence_stage(model, store, dirs, out, cfg, emotions, progress, lap)
    circuits = _circuits_stage(model, store, neurons, heads, chosen, influence_method, cfg, emotions, lap)
    faithful = _faithfulness_stage(model, store, dirs, circuits, cfg, progress, judge, lap)
    _save_circuits(circuits, out)
    summary = _summary(
        model,
        store,
        cfg,
        kept,
        refs,
        influence_method,
        dirs,
        evidence,
        circuits,
        gen_effect,
        faithful,
        judge,
        lap.timings,
    )
    summary.update(provenance())
    if cfg.figures:
        from circuits.figures.discovery import cross_context_cosines, discovery_figures

        drawn = discovery_figures(  # from what this run holds in memory, not re-read from disk
            out,
            emotions=emotions,
            pca=pca,
            evidence=evidence,
            neurons=neurons,
            heads=heads,
            sweeps=sweeps,
            influence=chosen,
            circuits=circuits,
            logit_lens=lens,
            cosine=cross_context_cosines(store, emotions),
        )
        summary["figures"] = [str(final / Path(p).relative_to(out)) for p in drawn]
        lap("figures")
    write_json_atomic(out / layout.SUMMARY_JSON, summary)
    return summary


def _store_stage(
    model: ModelHandle,
    dataset: SEVDataset,
    out: Path,
    cfg: DiscoverConfig,
    emotions: tuple[str, ...],
    settings: PromptSettings | None,
    progress: bool,
    judge: Any,
    lap: _Laps,
) -> tuple[Any, dict[str, Any]]:
    """The activation store (elicited replies kept when ``cfg.elicitation``) and what was kept; refuses a
    run where elicitation kept no row of an emotion."""
    store = build_store(
        model,
        dataset,
        out / layout.STORE_DIR,
        StoreConfig(emotions=emotions, limit=cfg.limit, batch_size=cfg.batch_size, dtype=cfg.store_dtype),
        settings,
        elicitation=cfg.elicitation,
        judge=judge,
        progress=progress,
    )
    lap("store")
    kept = kept_rows(store, emotions)
    if cfg.elicitation and not all(kept["by_emotion"].values()):
        none = [e for e, n in kept["by_emotion"].items() if n == 0]
        raise DiscoverInputError(
            f"elicitation kept no row of {', '.join(none)} ({kept_line(kept)}): the model does not follow the "
            "emotion prompt for them, so there is no direction to find. Pick a prompt it follows (`emocircuits "
            "prompts`), another judge, or --emotions without them"
        )
    return store, kept


def _directions_stage(
    store: Any, out: Path, cfg: DiscoverConfig, emotions: tuple[str, ...], lap: _Laps
) -> tuple[Any, dict[str, Any], Any]:
    """Emotion directions (``directions.*``), their evidence with the permuted-label nulls
    (``directions_evidence.json``) and the PCA of the figures."""
    from circuits.discovery.directions import (
        cross_context_cosine,
        emotion_directions,
        pca_by_layer,
        probe_accuracy,
        probe_data,
    )

    dirs = emotion_directions(store, emotions)
    dirs.save(out / layout.DIRECTIONS)
    data = {p: probe_data(store, p, emotions) for p in READ_POINTS}  # rows and folds, reused by the nulls
    evidence = {
        "cosine_by_theme": cross_context_cosine(store, "theme", emotions)["mean"].tolist(),
        "cosine_by_valence": cross_context_cosine(store, "valence", emotions)["mean"].tolist(),
        "probe_accuracy": {
            p: probe_accuracy(store, p, emotions, seed=cfg.seed, data=data[p]).tolist() for p in READ_POINTS
        },
    }
    pca = pca_by_layer(store, "mlp", emotions=emotions)
    lap("directions")
    if cfg.null_seeds > 0:
        from circuits.discovery.label_nulls import direction_nulls

        evidence["null"] = direction_nulls(store, emotions, seeds=cfg.null_seeds, seed=cfg.seed, data=data)
        lap("direction_nulls")
    write_json_atomic(out / layout.EVIDENCE_JSON, evidence)
    return dirs, evidence, pca


def _dla_stage(model: ModelHandle, store: Any, dirs: Any, out: Path, emotions: tuple[str, ...], lap: _Laps) -> Any:
    """Direct logit attribution (``dla.csv``) and the logit lens (``logit_lens.csv``, returned)."""
    from circuits.discovery import dla

    attribution = dla.direct_logit_attribution(model, store, dirs, emotions)
    lens = dla.logit_lens(model, store, emotions)
    write_csv(
        out / layout.DLA_CSV,
        ["component", "target", *emotions],
        [[lab, "emotion_score", *map(float, attribution["score"][i])] for i, lab in enumerate(attribution["labels"])]
        + [
            [lab, "emotion_words_logit", *map(float, attribution["logit"][i])]
            for i, lab in enumerate(attribution["labels"] + ["unembed_bias"])
        ],
    )
    write_csv(
        out / layout.LOGIT_LENS_CSV, ["layer", *emotions], [[L, *map(float, lens[L])] for L in range(lens.shape[0])]
    )
    lap("dla")
    return lens


def _unit_scores_stage(
    model: ModelHandle, store: Any, dirs: Any, out: Path, emotions: tuple[str, ...], lap: _Laps
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-pass neuron contributions ``[L, E, d_mlp]`` and head scores ``[L, E, H]``
    (``scores.safetensors``, ``neurons.csv`` with the top 64 per layer, ``heads.csv``)."""
    from circuits.discovery import components

    neurons = components.neuron_contributions(model, store, dirs)  # [L, E, d_mlp]
    heads = components.head_scores_one_pass(model, store, dirs)  # [L, E, H]
    lap("neurons_heads_one_pass")
    scores = {"neurons": neurons.contiguous(), "heads": heads.contiguous()}
    write_atomic(out / layout.SCORES, lambda p: save_file(scores, str(p)))
    top_n = min(64, model.arch.d_mlp)
    write_csv(
        out / layout.NEURONS_CSV,
        layout.NEURONS_COLUMNS,
        [
            [e, L, r, int(n), float(neurons[L, i, n])]
            for i, e in enumerate(emotions)
            for L in range(neurons.shape[0])
            for r, n in enumerate(torch.topk(neurons[L, i], top_n).indices)
        ],
    )
    write_csv(
        out / layout.HEADS_CSV,
        layout.HEADS_COLUMNS,
        [
            [e, L, h, float(heads[L, i, h])]
            for i, e in enumerate(emotions)
            for L in range(heads.shape[0])
            for h in range(heads.shape[2])
        ],
    )
    return neurons, heads


def _sweeps_stage(
    model: ModelHandle,
    store: Any,
    dirs: Any,
    neurons: torch.Tensor,
    heads: torch.Tensor,
    out: Path,
    cfg: DiscoverConfig,
    emotions: tuple[str, ...],
    progress: bool,
    lap: _Laps,
) -> list[dict[str, Any]]:
    """Ablation / enhancement sweeps of the top neurons and heads against random ones (``sweeps.csv``)."""
    from circuits.discovery import ablation

    sweep_rows = _subset_rows(store, "emotion", cfg.sweep_rows, emotions, cfg.seed + 1)
    sweep_store = _restricted(store, sweep_rows)
    scfg = ablation.SweepConfig(
        ks=cfg.sweep_ks, modes=cfg.sweep_modes, seeds=cfg.sweep_seeds, layers=sweep_layers(cfg, model.arch.n_layers)
    )
    sweeps = ablation.sweep(
        model, sweep_store, dirs, neurons, "neurons", scfg, emotions, progress, reference=store
    ) + ablation.sweep(model, sweep_store, dirs, heads, "heads", scfg, emotions, progress, reference=store)
    write_csv(out / layout.SWEEPS_CSV, layout.SWEEPS_COLUMNS, [[r[c] for c in layout.SWEEPS_COLUMNS] for r in sweeps])
    lap("sweeps")
    return sweeps


def _generations_stage(
    model: ModelHandle,
    store: Any,
    neurons: torch.Tensor,
    heads: torch.Tensor,
    out: Path,
    cfg: DiscoverConfig,
    emotions: tuple[str, ...],
    progress: bool,
    judge: Any,
    lap: _Laps,
) -> dict[str, Any] | None:
    """Judged generations under ablation and enhancement of the top units (``ablation_generations.json``);
    None with ``cfg.generation_rows == 0``."""
    if cfg.generation_rows <= 0:
        return None
    from circuits.discovery import ablation

    # scores are in `emotions` order; generation_effect indexes by store.emotions, which is the same here
    gen_effect = ablation.generation_effect(
        model,
        store,
        emotions,
        neurons,
        heads,
        k_neurons=cfg.generation_k_neurons,
        k_heads=cfg.generation_k_heads,
        rows_per_emotion=cfg.generation_rows,
        progress=progress,
        enhance=cfg.generation_enhance,
        enhance_factor=cfg.generation_enhance_factor,
        enhance_prompt=cfg.generation_enhance_prompt,
        judge=judge,
    )
    write_json_atomic(out / layout.ABLATION_GENERATIONS_JSON, gen_effect)
    lap("ablation_generations")
    return gen_effect


def _influence_stage(
    model: ModelHandle,
    store: Any,
    dirs: Any,
    out: Path,
    cfg: DiscoverConfig,
    emotions: tuple[str, ...],
    progress: bool,
    lap: _Laps,
) -> tuple[torch.Tensor, str, dict[str, Any]]:
    """Sublayer influence (gradient, and intervention on the reference layers with the reference measures'
    agreement): the normalised influence the circuits are allocated by, the method it came from, and the
    references (``influence.csv``)."""
    from circuits.discovery import influence

    grad_rows = influence.influence_gradient(model, store, dirs, progress=progress, per_row=True)
    infl_grad = grad_rows.mean(0)
    lap("influence_gradient")
    refs = _references(model, store, dirs, cfg, emotions, progress, grad_rows)
    lap("references")
    ref_layers = refs["layers"]
    infl_int = refs["influence"]
    influence_method = cfg.influence_method
    if influence_method == "intervention" and len(ref_layers) < model.arch.n_layers:
        influence_method = "gradient"  # the intervention measure covers only the reference layers (or none)
    chosen = influence.normalise(infl_int if influence_method == "intervention" else infl_grad)
    write_csv(
        out / layout.INFLUENCE_CSV,
        layout.INFLUENCE_COLUMNS,
        [
            [e, L, p, float(infl_int[L, j, i]), float(infl_grad[L, j, i]), float(chosen[L, j, i])]
            for i, e in enumerate(emotions)
            for L in range(infl_int.shape[0])
            for j, p in enumerate(READ_POINTS)
        ],
    )
    return chosen, influence_method, refs


def _circuits_stage(
    model: ModelHandle,
    store: Any,
    neurons: torch.Tensor,
    heads: torch.Tensor,
    chosen: torch.Tensor,
    influence_method: str,
    cfg: DiscoverConfig,
    emotions: tuple[str, ...],
    lap: _Laps,
) -> list[Any]:
    """One circuit per emotion, assembled from the unit scores, the influence and Delta-mu."""
    from circuits.circuit import assemble_circuit
    from circuits.discovery import ablation

    dmu_mlp = ablation.delta_mu(store, "mlp_post", emotions)
    dmu_heads = ablation.delta_mu(store, "z", emotions)
    alloc = cfg.allocation
    circuits = []
    for i, e in enumerate(emotions):
        circuits.append(
            assemble_circuit(
                e,
                influence_attn=chosen[:, 0, i],
                influence_mlp=chosen[:, 1, i],
                neuron_scores=neurons[:, i],
                head_scores=heads[:, i],
                delta_mu_mlp=dmu_mlp[i],
                delta_mu_heads=dmu_heads[i],
                model_info={"name": model.name, "fingerprint": model.fingerprint, "arch": model.arch},
                config=alloc,
                meta={
                    "dataset_sha256": store.meta["dataset"]["sha256"],
                    "n_rows": len(store.rows),
                    "influence_method": influence_method,
                    "prompts": store.meta["prompts"],
                },
            )
        )
    lap("circuits")
    return circuits


def _faithfulness_stage(
    model: ModelHandle,
    store: Any,
    dirs: Any,
    circuits: list[Any],
    cfg: DiscoverConfig,
    progress: bool,
    judge: Any,
    lap: _Laps,
) -> dict[str, Any] | None:
    """Faithfulness of each circuit against random circuits, set on the circuits; None with
    ``cfg.faithfulness_rows == 0``."""
    if cfg.faithfulness_rows <= 0:
        return None
    from circuits.circuit.ablation_faithfulness import FaithfulnessConfig, circuit_faithfulness
    from circuits.core.sev import DEFAULT_TEST, load_sev

    fcfg = FaithfulnessConfig(
        rows=cfg.faithfulness_rows,
        seeds=cfg.faithfulness_seeds,
        judge_rows=cfg.faithfulness_judge_rows,
        split=cfg.faithfulness_split,
        seed=cfg.seed,
    )
    heldout = load_sev(DEFAULT_TEST) if fcfg.split == "test" else None
    faithful = circuit_faithfulness(model, store, dirs, circuits, fcfg, heldout=heldout, judge=judge, progress=progress)
    for c in circuits:
        c.faithfulness = faithful[c.emotion]
    lap("faithfulness")
    return faithful


def _save_circuits(circuits: list[Any], out: Path) -> None:
    """``circuits/{emotion}.json|.safetensors`` and the EAP-IG graph ``{emotion}.graph.json``."""
    from circuits.circuit import save_circuits

    save_circuits(circuits, out / layout.CIRCUITS_DIR)
    for c in circuits:
        c.save_graph(out / layout.CIRCUITS_DIR / f"{c.emotion}.graph.json")


def _summary(
    model: ModelHandle,
    store: Any,
    cfg: DiscoverConfig,
    kept: dict[str, Any],
    refs: dict[str, Any],
    influence_method: str,
    dirs: Any,
    evidence: dict[str, Any],
    circuits: list[Any],
    gen_effect: dict[str, Any] | None,
    faithful: dict[str, Any] | None,
    judge: Any,
    timings: dict[str, float],
) -> dict[str, Any]:
    """What ``summary.json`` holds: what ran on what, the agreements, sizes, headline numbers and timings."""
    from circuits.circuit.ablation_faithfulness import faithfulness_summary
    from circuits.judges.base import judge_name

    return {
        "model": model.describe(),
        "dataset": store.meta["dataset"],
        "config": cfg.to_dict(),
        "prompts": store.meta["prompts"],
        "rows": {
            "emotion": int(store.index("emotion").numel()),
            "neutral": int(store.index("neutral").numel()),
            "accepted": kept["accepted"],
            "kept": kept,
        },
        "agreement": refs["agreement"],
        "influence_method": influence_method,
        "directions": {
            "n_groups": dirs.n_groups,
            "best_probe_layer": int(torch.tensor(evidence["probe_accuracy"]["mlp"]).argmax()),
            "probe_accuracy_mlp": evidence["probe_accuracy"]["mlp"],
            "null_probe_accuracy_mlp": (
                evidence["null"]["probe_accuracy"]["mlp"]["mean"] if "null" in evidence else None
            ),
        },
        "circuits": {c.emotion: {"neurons": c.n_neurons, "heads": c.n_heads} for c in circuits},
        "ablation_generations": gen_effect["mean"] if gen_effect else None,
        "ablation_generations_broken_share": gen_effect["broken_share"] if gen_effect else None,
        "faithfulness": faithfulness_summary(faithful) if faithful else None,
        "judge": judge_name(judge),
        "timings_s": timings,
    }


def spread_layers(n_layers: int, k: int) -> tuple[int, ...]:
    """``k`` layers spread evenly over ``n_layers`` (the middle of each of k equal slices; all for k >= n)."""
    k = min(k, n_layers)
    return tuple(sorted({min(n_layers - 1, int((i + 0.5) * n_layers / k)) for i in range(k)}))


def sweep_layers(cfg: DiscoverConfig, n_layers: int) -> tuple[int, ...]:
    """The sweeps' layers: ``cfg.sweep_layers``, else ``cfg.sweep_layer_count`` spread layers (0: all)."""
    if cfg.sweep_layers:
        return tuple(cfg.sweep_layers)
    return spread_layers(n_layers, cfg.sweep_layer_count or n_layers)


def _references(
    model: ModelHandle,
    store,
    dirs,
    cfg: DiscoverConfig,
    emotions: Sequence[str],
    progress: bool,
    grad_rows: torch.Tensor | None = None,
) -> dict[str, Any]:
    """The slow reference measures (per-head ablation, intervention influence) on their row subsets and on
    ``cfg.reference_layers``, or on as many spread layers as ``cfg.reference_budget_s`` allows after
    timing the middle layer, or none (budget 0). Returns ``{"layers", "influence" (zero outside the
    layers), "agreement"}``; the agreement block says which rows and layers were checked, or why not.
    ``grad_rows``: the gradient influence of every neutral row (``[rows, n_layers, 2, n_emotions]``, in
    ``store.index("neutral")`` order), whose subset gives the gradient side of the agreement without a
    second pass."""
    from circuits.discovery import components, influence

    L = model.arch.n_layers
    ref_rows = _subset_rows(store, "emotion", cfg.reference_head_rows, emotions, cfg.seed)
    infl_rows = _subset_rows(store, "neutral", cfg.influence_rows, None, cfg.seed + 2)
    sub = _restricted(store, ref_rows)
    heads_ref = torch.zeros(L, len(emotions), model.arch.n_heads)
    infl_int = torch.zeros(L, 2, len(emotions))
    agreement: dict[str, Any] = {
        "heads_rows": int(ref_rows.numel()),
        "influence_rows": int(infl_rows.numel()),
        "reference_budget_s": cfg.reference_budget_s,
    }

    def measure(layers: Sequence[int]) -> None:
        heads_ref.add_(components.head_scores_reference(model, sub, dirs, layers=layers, progress=progress))
        infl_int.add_(
            influence.influence_intervention(
                model, store, dirs, alphas=cfg.alphas, rows=infl_rows, layers=layers, progress=progress
            )
        )

    if cfg.reference_layers:
        layers = sorted(set(cfg.reference_layers))
        measure(layers)
    elif cfg.reference_budget_s == 0:
        layers = []
    else:
        probe = spread_layers(L, 1)[0]
        t0 = time.perf_counter()
        measure([probe])
        per_layer = time.perf_counter() - t0
        fit = max(1, int(cfg.reference_budget_s / max(per_layer, 1e-9)))
        layers = sorted(set(spread_layers(L, fit)) | {probe})
        measure([x for x in layers if x != probe])
        agreement["seconds_per_layer"] = round(per_layer, 3)
    agreement["reference_layers"] = layers
    if not layers:
        agreement.update(
            heads_spearman=None,
            influence_spearman=None,
            note="reference measures skipped (reference_budget_s=0): the one-pass head scores and "
            "the gradient influence are not checked against the slow measures on this run",
        )
    else:
        heads_sub = components.head_scores_one_pass(model, sub, dirs)
        grad_sub = _gradient_on(model, store, dirs, infl_rows, grad_rows)
        agreement.update(
            heads_spearman=_spearman(heads_sub[layers], heads_ref[layers]),
            influence_spearman=_spearman(infl_int[layers], grad_sub[layers]),
        )
    return {"layers": layers, "influence": infl_int, "agreement": agreement}


def _gradient_on(model: ModelHandle, store, dirs, rows: torch.Tensor, grad_rows: torch.Tensor | None) -> torch.Tensor:
    """The gradient influence on neutral store rows ``rows`` ``[n_layers, 2, n_emotions]``: the mean of
    their per-row values in ``grad_rows`` (see :func:`_references`), or a pass of its own without them."""
    from circuits.discovery import influence

    neutral = {int(r): j for j, r in enumerate(store.index("neutral"))}
    if grad_rows is None or len(neutral) != grad_rows.shape[0] or any(int(r) not in neutral for r in rows):
        return influence.influence_gradient(model, store, dirs, rows=rows, progress=False)
    return grad_rows[[neutral[int(r)] for r in rows]].mean(0)


def agreement_line(agreement: dict[str, Any]) -> str:
    """One line on how far the one-pass measures agree with the slow references (or why unchecked)."""
    if agreement.get("heads_spearman") is None:
        return agreement.get("note", "reference measures skipped")
    layers = agreement["reference_layers"]
    return (
        f"one-pass vs reference on {len(layers)} layer(s) {layers}: heads Spearman "
        f"{agreement['heads_spearman']:.3f} ({agreement['heads_rows']} rows), influence Spearman "
        f"{agreement['influence_spearman']:.3f} ({agreement['influence_rows']} rows)"
    )


def _restricted(store, idx: torch.Tensor):
    """A view of ``store`` holding only rows ``idx`` (same meta), for analyses on a subset."""
    from circuits.discovery.store import ActivationStore

    meta = dict(store.meta)
    meta["rows"] = [store.meta["rows"][int(i)] for i in idx]
    return ActivationStore(store.path, meta, {k: v[idx] for k, v in store._tensors.items()})
