"""``export-gguf`` and ``export-graph``: a discovery run's results in formats other tools read.

* :func:`export_control_vector`: a direction, Emotion Vector, VA axis or circuit of a run as a llama.cpp
  control vector (:mod:`circuits.interop.controlvector`); :func:`check_control_vector` then measures
  what the file does: judged accuracy on test prompts in the workbench (the file read back as
  interventions) and, where llama-cpp-python is installed, in llama.cpp itself, each with and without
  the file; for a circuit also circuit modulation itself, so the share of its effect the file keeps
  is on the same replies' footing.
* :func:`export_graphs`: per circuit, the EAP-IG graph JSON, a node-link JSON with labelled nodes and a
  self-contained HTML view, next to the circuit in ``circuits/``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from circuits.core.artifacts import InputError
from circuits.core.config import ConfigError, check_config, help_field
from circuits.core.model import ModelHandle
from circuits.interop import controlvector as cvec
from circuits.runs import layout
from circuits.runs.rundir import Run

SOURCES = ("direction", "emotion_vector", "circuit", "va")


@dataclass(frozen=True)
class ControlVectorConfig:
    """What ``export-gguf`` writes (the vector) and how it checks the file (``check`` test scenarios)."""

    source: str = help_field(None, "what becomes the control vector", choices=SOURCES, required=True)
    emotion: str | None = help_field(None, "the emotion (every source but va)")
    strength: float = help_field(
        None,
        "alpha (direction: x mean residual RMS; emotion_vector: x EV; va: x mean "
        "residual RMS) or lambda (circuit: x Delta-mu); the file holds the vector "
        "as added",
        required=True,
    )
    layers: tuple[int, ...] | None = help_field(None, "direction: layers (None: 40-72% of the depth)", min=0)
    axis: str | None = help_field(None, "source va: the axis (None: valence)", choices=("valence", "arousal"))
    check: int = help_field(
        0,
        "also steer with the file on the neutral prompts of N test scenarios, in the "
        "workbench and (if llama-cpp-python is installed) in llama.cpp, and judge the "
        "replies (0: no check)",
        min=0,
        metavar="N",
    )

    def __post_init__(self) -> None:
        check_config(self)
        if self.source != "va" and not self.emotion:
            raise ConfigError(f"ControlVectorConfig.emotion (--emotion): source {self.source!r} needs an emotion")
        used_by = {"emotion": "every source but va", "axis": "source va only", "layers": "source direction only"}
        given = {
            "emotion": self.source == "va" and self.emotion is not None,
            "axis": self.source != "va" and self.axis is not None,
            "layers": self.source != "direction" and self.layers is not None,
        }
        for name, ignored in given.items():
            if ignored:
                raise ConfigError(
                    f"ControlVectorConfig.{name} (--{name}): source {self.source!r} would ignore it "
                    f"({used_by[name]}); leave it out"
                )

    def check_model(self, model: ModelHandle) -> None:
        """Refuse ``layers`` beyond ``model`` (or block 0, which llama.cpp cannot steer): call it right
        after the model loads, before anything is written."""
        from circuits.core.config import check_at_most, check_number

        check_at_most(self, "layers", model.arch.n_layers - 1, f"{model.name} has blocks 0-{model.arch.n_layers - 1}")
        for layer in self.layers or ():
            check_number(layer, "ControlVectorConfig.layers (--layers)", int, min=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_control_vector(
    model: ModelHandle, run_dir: str | Path, cfg: ControlVectorConfig, *, va_dir: str | Path | None = None
) -> cvec.ControlVector:
    """The control vector of ``cfg.source`` (one of :data:`SOURCES`) from the discovery run ``run_dir``:
    ``direction`` (``alpha * sigma_L * v_L`` on ``cfg.layers``, default the direction-steering layers),
    ``emotion_vector`` (``alpha * EV_L``), ``circuit`` (``lam`` x the circuit's residual write) or ``va``
    (``alpha * sigma * axis`` of the VA run ``va_dir``). ``cfg.strength`` is alpha or lambda."""
    from circuits.discovery.influence import residual_sigma

    run = Run(run_dir, check=False)
    source, emotion, strength, layers, axis = cfg.source, cfg.emotion, cfg.strength, cfg.layers, cfg.axis
    if source == "direction":
        from circuits.steer.methods import default_direction_layers

        dirs = run.directions()
        if dirs.fingerprint != model.fingerprint:
            raise InputError(f"{run.path}: the run's directions were made on another model than {model.name}")
        chosen = list(layers) if layers else default_direction_layers(model.arch.n_layers)
        return cvec.from_directions(model, dirs, emotion, chosen, strength, residual_sigma(run.store(model)))
    if source == "emotion_vector":
        ev, emotions = run.emotion_vectors(model)
        return cvec.from_emotion_vectors(model, ev, emotions, emotion, strength)
    if source == "circuit":
        from circuits.circuit import Circuit

        return cvec.from_circuit(Circuit.load(run.circuit_file(emotion), model=model), model, strength)
    if va_dir is None:
        raise InputError("--va: source 'va' needs the VA run directory (--va DIR)")
    axes = Run(va_dir, check=False).va_axes()
    sigma = float(residual_sigma(run.store(model))[axes.layer, 1])
    return cvec.from_va_axis(model, axes, axis or "valence", strength, sigma)


def check_control_vector(
    model: ModelHandle,
    cv: cvec.ControlVector,
    emotion: str,
    *,
    limit: int = 2,
    circuit_lambda: float | None = None,
    run_dir: str | Path | None = None,
    judge: Any = None,
    max_new_tokens: int = 48,
    threads: int = 2,
    gguf_model: str | Path | None = None,
) -> dict[str, Any]:
    """Judged accuracy (share of replies judged ``emotion``) on the neutral prompts of ``limit`` test
    scenarios: the workbench without and with ``cv`` (read back as ``resid_post`` edits at every
    position), circuit modulation itself when ``circuit_lambda`` is given (the run's circuit for
    ``emotion``), and llama.cpp without and with ``cv`` when llama-cpp-python is installed and
    ``gguf_model`` (default: the packaged SmolLM2 GGUF for ``smollm2-135m``) is a GGUF of the same model.
    Also the emotion score ``s`` at the last prompt token (final state on the run's reference direction)
    for the workbench conditions, when ``run_dir`` is given."""
    from circuits.core.generate import GenerationSettings, generate
    from circuits.core.sev import DEFAULT_TEST, load_sev
    from circuits.judges.base import default_judge_instance, judge_name, judge_replies
    from circuits.judges.fluency import default_fluency_check

    judge = judge or default_judge_instance(model.name)
    settings = Run(run_dir, check=False).prompts if run_dir else None
    items = load_sev(DEFAULT_TEST).subset(limit).items([emotion])
    chat = settings.chat if settings else (lambda e, u: (None, u))
    prompts = [model.chat_ids(*chat(None, it.user_text)) for it in items]
    gen = GenerationSettings(max_new_tokens=max_new_tokens)
    conditions: dict[str, list] = {"workbench, no edit": [], "workbench + file": cv.interventions(model)}
    if circuit_lambda is not None and run_dir is not None:
        from circuits.circuit import Circuit
        from circuits.steer.methods import circuit_modulation

        circuit = Circuit.load(Run(run_dir, check=False).circuit_file(emotion), model=model)
        conditions["workbench, circuit modulation"] = circuit_modulation(circuit, model, lam=circuit_lambda)
    replies = {
        name: generate(model, prompts, gen, interventions=ivs or None, progress=False)
        for name, ivs in conditions.items()
    }
    engine = _llama_cpp(model, gguf_model, threads)
    if engine is not None:
        try:
            replies["llama.cpp, no edit"] = engine.replies(model, prompts, max_new_tokens)
            engine.set_control_vector(cv)
            replies["llama.cpp + file"] = engine.replies(model, prompts, max_new_tokens)
        finally:
            engine.close()
    out: dict[str, Any] = {
        "emotion": emotion,
        "n": len(prompts),
        "judge": judge_name(judge),
        "conditions": {},
        "file_meta": cv.meta,
        "llama_cpp": engine is not None,
    }
    for name, texts in replies.items():
        judged = judge_replies(judge, texts, [emotion] * len(texts), fluency=default_fluency_check(model.name))
        out["conditions"][name] = {
            "accuracy": sum(judged.hits) / max(1, len(texts)),
            "raw_accuracy": sum(judged.raw_hits) / max(1, len(texts)),
            "broken_share": sum(judged.broken) / max(1, len(texts)),
            "examples": texts[:2],
        }
    if run_dir is not None:
        scores = _emotion_scores(model, Run(run_dir, check=False), emotion, prompts, conditions)
        for name, s in scores.items():
            out["conditions"][name]["emotion_score"] = s
    return out


def _llama_cpp(model: ModelHandle, gguf_model: str | Path | None, threads: int):
    from circuits.interop.llamacpp import LlamaCpp, available

    if not available():
        return None
    if gguf_model is None:
        if model.name != "smollm2-135m":
            return None
        from circuits.core.gguf import packaged_gguf

        gguf_model = packaged_gguf("smollm2-135m")
    return LlamaCpp(gguf_model, n_threads=threads)


@torch.no_grad()
def _emotion_scores(
    model: ModelHandle, run: Run, emotion: str, prompts: list[list[int]], conditions: dict[str, list]
) -> dict[str, float]:
    """Mean ``s`` = <final state at the last prompt token, v_ref> per workbench condition."""
    from circuits.core.hooks import run_forward
    from circuits.discovery.influence import FINAL_STATE, final_state, reference_directions

    dirs = run.directions()
    v = reference_directions(dirs)[list(dirs.emotions).index(emotion)]
    ids, mask = model.pad_left(prompts)
    return {
        name: float((final_state(run_forward(model, ids, mask, ivs, FINAL_STATE)).cpu() @ v.float().cpu()).mean())
        for name, ivs in conditions.items()
    }


def check_table(result: dict[str, Any]) -> str:
    lines = [f"{result['emotion']}: {result['n']} neutral test prompts, judge {result['judge']}"]
    for name, c in result["conditions"].items():
        score = f"   s {c['emotion_score']:+.3f}" if "emotion_score" in c else ""
        lines.append(f"  {name:<32}{c['accuracy']:>7.1%}{score}")
    if not result["llama_cpp"]:
        lines.append("  (llama.cpp not run: llama-cpp-python is not installed, or no GGUF of this model was given)")
    return "\n".join(lines)


def export_graphs(model: ModelHandle, run_dir: str | Path, emotions: Sequence[str] | None = None) -> list[Path]:
    """Per circuit of the run: ``{e}.graph.json`` (EAP-IG), ``{e}.nodelink.json`` and ``{e}.html``."""
    from circuits.interop.graphview import node_link_graph, save_circuit_html, save_node_link

    run = Run(run_dir, check=False)
    folder = run.file(layout.CIRCUITS_DIR)
    written = []
    for e, c in run.circuits(model=model, emotions=emotions).items():
        g = node_link_graph(c, model)
        written += [
            c.save_graph(folder / f"{e}.graph.json"),
            save_node_link(g, folder / f"{e}.nodelink.json"),
            save_circuit_html(g, folder / f"{e}.html"),
        ]
    return written
