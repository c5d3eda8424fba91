"""Property-based: generated malformed (and well-formed) input files give a valid load or one clean
InputError naming the file, never another exception."""

from __future__ import annotations

import json
import shutil
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuits.core.artifacts import InputError

SETTINGS = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

junk_bytes = st.binary(max_size=300)
cells = st.one_of(st.text(alphabet=string.printable, max_size=12), st.sampled_from(
    ["nan", "inf", "-inf", "1e309", "", "5", "-500", "3000", "anger", "joy", "neutral", "\ufeff", "\xff", "9.5"]))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                                     st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=10), inner, max_size=5)),
                           max_leaves=12)


def _sev_like():
    event = st.dictionaries(st.sampled_from(["positive", "neutral", "negative", "other"]), json_values, max_size=4)
    return st.fixed_dictionaries({}, optional={"theme": json_values, "scenario": json_values, "event": event,
                                               "skeleton_id": json_values})


def _clean(fn, path):
    """``fn(path)`` loads, or raises an InputError whose message names the file."""
    try:
        return fn(path)
    except InputError as err:
        assert path.name in str(err), err
        return None


@SETTINGS
@given(lines=st.lists(st.one_of(_sev_like().map(json.dumps), st.text(max_size=40)), max_size=6), raw=junk_bytes,
       as_array=st.booleans(), use_raw=st.booleans())
def test_sev_loader_never_crashes(tmp_path, lines, raw, as_array, use_raw):
    from circuits.core.sev import load_sev

    p = tmp_path / "gen.jsonl"
    if use_raw:
        p.write_bytes(raw)
    elif as_array:
        p.write_text("[" + ",".join(lines) + "]", encoding="utf-8")
    else:
        p.write_text("\n".join(lines), encoding="utf-8")
    _clean(load_sev, p)


@SETTINGS
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=4), max_size=6),
       header=st.sampled_from(["text,labels", "text,label", "text", "labels", ""]), raw=junk_bytes,
       use_raw=st.booleans(), jsonl=st.lists(json_values, max_size=4), kind=st.sampled_from(["csv", "jsonl"]))
def test_labelled_text_loader_never_crashes(tmp_path, rows, header, raw, use_raw, jsonl, kind):
    from circuits.va import load_labelled_texts

    p = tmp_path / f"texts.{kind}"
    if use_raw:
        p.write_bytes(raw)
    elif kind == "csv":
        p.write_text(header + "\n" + "\n".join(",".join(r) for r in rows), encoding="utf-8")
    else:
        p.write_text("\n".join(json.dumps(o) for o in jsonl), encoding="utf-8")
    _clean(load_labelled_texts, p)


@SETTINGS
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=4), max_size=6), raw=junk_bytes, use_raw=st.booleans(),
       header=st.sampled_from(["emotion,valence,arousal", "emotion,valence", "word,valence,arousal", ""]))
def test_ratings_and_lexicon_loaders_never_crash(tmp_path, rows, raw, use_raw, header):
    from circuits.va import load_va_lexicon, load_va_ratings

    p = tmp_path / "vals.csv"
    if use_raw:
        p.write_bytes(raw)
    else:
        p.write_text(header + "\n" + "\n".join(",".join(r) for r in rows), encoding="utf-8")
    _clean(load_va_lexicon, p)
    ratings = _clean(load_va_ratings, p)
    for va in (ratings or {}).values():  # whatever loads is finite
        assert all(abs(v) < float("inf") for v in va), va


@pytest.fixture(scope="module")
def saved_circuit(tmp_path_factory):
    import torch

    from circuits.circuit import assemble_circuit
    from circuits.core.arch import ArchInfo

    arch = ArchInfo("Qwen2ForCausalLM", 2, 4, 2, 16, 4, 32, 50, True, False)
    g = torch.Generator().manual_seed(0)
    c = assemble_circuit("anger", influence_attn=torch.ones(2), influence_mlp=torch.ones(2),
                         neuron_scores=torch.randn(2, 32, generator=g), head_scores=torch.randn(2, 4, generator=g),
                         delta_mu_mlp=torch.randn(2, 32, generator=g), delta_mu_heads=torch.randn(2, 4, 4, generator=g),
                         model_info={"name": "m", "fingerprint": "f", "arch": arch})
    root = tmp_path_factory.mktemp("circ")
    c.save(root / "anger.json")
    return root


@SETTINGS
@given(path=st.lists(st.one_of(st.text(max_size=8), st.integers(0, 5)), min_size=1, max_size=4), value=json_values,
       raw=junk_bytes, use_raw=st.booleans(),
       top=st.sampled_from(["model", "layers", "budget", "allocation", "influence", "emotion", "schema_version",
                            "delta_mu_file", "meta"]))
def test_circuit_loader_never_crashes(saved_circuit, tmp_path, path, value, raw, use_raw, top):
    """The saved circuit with one field (at a generated JSON path under ``top``) replaced by a generated
    value, or the whole file replaced by generated bytes."""
    from circuits.circuit import Circuit

    d = tmp_path / "c"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(saved_circuit, d)
    target = d / "anger.json"
    if use_raw:
        target.write_bytes(raw)
    else:
        obj = json.loads(target.read_text())
        node, keys = obj, [top, *path]
        for key in keys[:-1]:
            if isinstance(node, dict) and isinstance(key, str) and isinstance(node.get(key), (dict, list)):
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node) \
                    and isinstance(node[key], (dict, list)):
                node = node[key]
            else:
                break
        last = keys[-1]
        if isinstance(node, dict):
            node[str(last)] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        target.write_text(json.dumps(obj))
    _clean(Circuit.load, target)
