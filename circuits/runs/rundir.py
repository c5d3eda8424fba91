"""One run directory and everything other modules read from it: :class:`Run`.

The file names are the constants of :mod:`circuits.runs.layout`; the writers stay with the jobs that
write them (``discover``, ``evaluate``, ``va``, ...). A VA run directory is a :class:`Run` too (its
``summary.json``, ``axes``)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from circuits.core.artifacts import InputError
from circuits.core.readers import FLOATING, load_tensors, read_json, read_jsonl
from circuits.core.sev import PromptSettings
from circuits.runs import layout

_REQUIRED = object()


class Run:
    """A discovery run directory (``emocircuits discover --out``).

    ``Run(path)`` refuses (:class:`InputError` naming the path) a directory with neither ``summary.json``
    nor ``circuits/``; nothing is created. ``check=False`` takes any path as it is (readers then fail
    on the files they need)."""

    def __init__(self, path: str | os.PathLike, *, check: bool = True) -> None:
        self.path = Path(path)
        if check and not self.file(layout.SUMMARY_JSON).is_file() and not self.file(layout.CIRCUITS_DIR).is_dir():
            raise InputError(
                f"{self.path}: not a discovery run directory (no {layout.SUMMARY_JSON}, no "
                f"{layout.CIRCUITS_DIR}/); run `emocircuits discover --out {self.path}` first"
            )

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------------------------ files
    def file(self, name: str) -> Path:
        """The path of ``name`` (a :mod:`~circuits.runs.layout` constant, or a name relative to the run)."""
        return self.path / name

    def has(self, name: str) -> bool:
        """Whether ``name`` exists in the run (file or folder)."""
        return self.file(name).exists()

    def json(self, name: str, default: Any = _REQUIRED) -> Any:
        """A JSON file of the run; ``default`` when it does not exist. :class:`InputError` naming the file
        when it is missing (and no default is given) or is not valid UTF-8 JSON."""
        path = self.file(name)
        if not path.is_file():
            if default is not _REQUIRED:
                return default
            raise InputError(f"{path}: not found")
        return read_json(path, what="run file", top=None, allow_nan=True)

    def jsonl(self, name: str) -> list[dict[str, Any]] | None:
        """The objects of a JSON Lines file of the run (None when it does not exist); :class:`InputError`
        naming the file and line of a line that is not a JSON object."""
        path = self.file(name)
        if not path.is_file():
            return None
        return read_jsonl(path, what="run file", allow_nan=True)

    # ------------------------------------------------------------------------- what ran, on what
    @cached_property
    def summary(self) -> dict[str, Any]:
        """``summary.json`` (read once)."""
        return self.json(layout.SUMMARY_JSON)

    @property
    def model_name(self) -> str:
        """The model the run was made on, as its ``summary.json`` names it (what ``--model`` takes);
        :class:`InputError` naming the file when it records none."""
        path = self.file(layout.SUMMARY_JSON)
        try:
            name = self.summary["model"]["name"]
        except (OSError, ValueError, KeyError, TypeError):
            name = None
        if not isinstance(name, str) or not name:
            raise InputError(f"{path}: no model.name recorded (missing or unreadable file); pass --model")
        return name

    @property
    def prompts(self) -> PromptSettings:
        """The prompt settings the run was made with (its store's), the paper's when not recorded."""
        meta = self.file(layout.STORE_DIR) / "meta.json"
        prompts = read_json(meta, what="store meta file").get("prompts") if meta.is_file() else None
        if prompts is not None and not isinstance(prompts, dict):
            raise InputError(f"{meta}: field 'prompts': expected an object of prompt settings")
        return PromptSettings.from_dict(prompts or {})

    # ------------------------------------------------------------------------------ artifacts
    def store(self, model: Any = None) -> Any:
        """The activation store (:class:`~circuits.discovery.store.ActivationStore`; checked against
        ``model`` when given)."""
        from circuits.discovery.store import ActivationStore

        return (
            ActivationStore.load(self.file(layout.STORE_DIR), model)
            if model is not None
            else ActivationStore.load(self.file(layout.STORE_DIR))
        )

    def directions(self, source: str = "sev") -> Any:
        """The run's :class:`~circuits.discovery.directions.Directions` of ``source``: ``sev``
        (``directions``) or ``concept`` (``concept_directions``, from ``emocircuits concepts``)."""
        from circuits.discovery.concept_vectors import CONCEPT_DIRECTIONS
        from circuits.discovery.directions import Directions

        if source == "concept":
            path = self.file(CONCEPT_DIRECTIONS)
            if not path.with_suffix(".safetensors").is_file():
                raise InputError(
                    f"{path.with_suffix('.safetensors')}: no emotion-concept directions in this run: "
                    f"compute them first with `emocircuits concepts --run {self.path}`"
                )
            return Directions.load(path)
        if source != "sev":
            raise InputError(f"direction source {source!r}: expected 'sev' or 'concept'")
        return Directions.load(self.file(layout.DIRECTIONS))

    def has_concept_directions(self) -> bool:
        """Whether ``emocircuits concepts`` wrote concept directions into the run."""
        from circuits.discovery.concept_vectors import CONCEPT_DIRECTIONS

        return self.file(CONCEPT_DIRECTIONS).with_suffix(".safetensors").is_file()

    def circuits(self, model: Any = None, emotions: Sequence[str] | None = None) -> dict[str, Any]:
        """``{emotion: Circuit}`` of ``circuits/`` (checked against ``model`` when given)."""
        from circuits.circuit import load_circuits

        return load_circuits(self.file(layout.CIRCUITS_DIR), model=model, emotions=emotions)

    def circuit_file(self, emotion: str) -> Path:
        """``circuits/{emotion}.json``."""
        return self.file(layout.CIRCUITS_DIR) / f"{emotion}.json"

    def emotion_vectors(self, model: Any, progress: bool = True) -> tuple[Any, list[str]]:
        """The run's Emotion Vectors ``[n_emotions, n_layers, d_model]`` and their emotions: read from
        ``emotion_vectors.safetensors``, or computed from the run's store and written there once."""
        from safetensors.torch import save_file

        from circuits.core.artifacts import write_atomic
        from circuits.steer.methods import emotion_vectors

        ev_path = self.file(layout.EMOTION_VECTORS)
        store = self.store(model)
        if ev_path.exists():
            shape = (len(store.emotions), store.n_layers, int(model.arch.d_model))
            ev = load_tensors(ev_path, what="emotion-vector file", expect={"ev": (shape, FLOATING)})["ev"]
        else:
            ev = emotion_vectors(model, store, progress=progress)
            write_atomic(ev_path, lambda p: save_file({"ev": ev.contiguous()}, str(p)))
        return ev, list(store.emotions)

    def scores(self) -> dict[str, Any]:
        """``scores.safetensors``: ``{"neurons", "heads"}`` tensors."""
        return load_tensors(self.file(layout.SCORES), what="score file")

    @property
    def evidence(self) -> dict[str, Any]:
        """``directions_evidence.json`` (probe accuracy, cross-context cosines, nulls)."""
        return self.json(layout.EVIDENCE_JSON)

    @property
    def evaluation(self) -> dict[str, Any] | None:
        """``evaluation.json`` of the run's evaluation (:func:`evaluation_folder`; None before
        ``emocircuits evaluate``); :class:`InputError` naming the file when it cannot be read."""
        folder = evaluation_folder(self)
        if folder is None:
            return None
        return self.json(str(folder.relative_to(self.path) / layout.EVALUATION_JSON))

    @property
    def faithfulness(self) -> dict[str, Any] | None:
        """``faithfulness.json`` (None before ``emocircuits faithfulness`` or a discover that measured it)."""
        return self.json(layout.FAITHFULNESS_JSON, None)

    def sweeps(self) -> list[dict[str, Any]]:
        """``sweeps.csv`` (:func:`circuits.runs.layout.read_sweeps`)."""
        return layout.read_sweeps(self.path)

    def influence(self, emotions: Sequence[str], n_layers: int) -> Any:
        """``influence.csv`` (:func:`circuits.runs.layout.read_influence`)."""
        return layout.read_influence(self.path, emotions, n_layers)

    def logit_lens(self, emotions: Sequence[str]) -> Any:
        """``logit_lens.csv`` (:func:`circuits.runs.layout.read_logit_lens`)."""
        return layout.read_logit_lens(self.path, emotions)

    def va_axes(self) -> Any:
        """The :class:`~circuits.va.subspace.VAAxes` of a VA run directory (``axes.*``)."""
        from circuits.va.subspace import VAAxes

        return VAAxes.load(self.file("axes"))


__all__ = ["Run"]


def evaluation_folder(run: Run | str | os.PathLike) -> Path | None:
    """The folder of the run's evaluation: ``RUN/evaluation/`` (:data:`~circuits.runs.layout.EVALUATION_DIR`)
    when it holds ``evaluation.json``, else the run itself when it does (a run made by 0.2); None
    before ``emocircuits evaluate``."""
    path = run.path if isinstance(run, Run) else Path(run)
    for folder in (path / layout.EVALUATION_DIR, path):
        if (folder / layout.EVALUATION_JSON).is_file():
            return folder
    return None
