"""The Run class: what it refuses, and what it reads from a hand-made run directory."""

from __future__ import annotations

import json

import pytest

from circuits.core.artifacts import InputError
from circuits.core.sev import PromptSettings
from circuits.runs import layout
from circuits.runs.rundir import Run


def test_a_directory_without_a_run_is_refused_naming_it(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(InputError, match="not a discovery run directory") as err:
            Run(path)
        assert str(path) in str(err.value)
    assert not (tmp_path / "missing").exists()  # nothing is created
    (tmp_path / layout.CIRCUITS_DIR).mkdir()
    assert Run(tmp_path).path == tmp_path  # circuits/ alone is a run (as before summary.json existed)


def test_model_name_prompts_and_files(tmp_path):
    (tmp_path / layout.SUMMARY_JSON).write_text(json.dumps({"model": {"name": "some/model"}, "config": {}}))
    run = Run(str(tmp_path))
    assert run.model_name == "some/model" and run.summary["config"] == {}
    assert run.prompts == PromptSettings()  # nothing recorded: the paper's
    assert run.file(layout.EVIDENCE_JSON) == tmp_path / layout.EVIDENCE_JSON
    assert run.has(layout.SUMMARY_JSON) and not run.has(layout.EVALUATION_JSON)
    assert run.evaluation is None and run.faithfulness is None and run.json(layout.EVIDENCE_JSON, {}) == {}
    with pytest.raises(InputError, match=layout.EVIDENCE_JSON):
        _ = run.evidence
    assert run.circuit_file("anger") == tmp_path / layout.CIRCUITS_DIR / "anger.json"


@pytest.mark.parametrize("summary", ["{not json", json.dumps({"model": {}}), json.dumps({"model": {"name": ""}})])
def test_a_run_without_a_model_name_says_which_file(tmp_path, summary):
    (tmp_path / layout.SUMMARY_JSON).write_text(summary)
    with pytest.raises(InputError, match="no model.name recorded") as err:
        _ = Run(tmp_path).model_name
    assert str(tmp_path / layout.SUMMARY_JSON) in str(err.value)


def test_an_unknown_direction_source_is_refused(tmp_path):
    run = Run(tmp_path, check=False)
    with pytest.raises(InputError, match="expected 'sev' or 'concept'"):
        run.directions("other")
    with pytest.raises(InputError, match="emocircuits concepts"):
        run.directions("concept")
