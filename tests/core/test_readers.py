"""The hardened reading layer (circuits.core.readers): one case per cause of a decode problem, each an
InputError naming the file (and line / field / tensor), and hypothesis fuzzing of the layer itself:
every input gives a valid value or an InputError naming the file, nothing else."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from circuits.core import readers as R
from circuits.core.artifacts import InputError

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _fails(fn, *names: str) -> str:
    """``fn()`` raises InputError whose one-line message holds every one of ``names``."""
    with pytest.raises(InputError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg, msg
    for name in names:
        assert name in msg, (name, msg)
    return msg


# ------------------------------------------------------------------------------------------- JSON
@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": ["x", "\\ud800"]}', "field 'a[1]': holds a lone surrogate"),
        ('[{"b": {"c": "\\udfff"}}]', "field '[0].b.c': holds a lone surrogate"),
        ('{"\\udc00": 1}', "the key of field '\\udc00': holds a lone surrogate"),
        ('{"a": ' + "7" * 5000 + "}", "an integer has more than 4300 digits"),
        ("[" * 100_000, "nested too deep"),
        ("[" * 70 + "]" * 70, "nested more than 64 levels"),
        ('{"a": [1, 2', "not JSON (Expecting"),
        ("[1, 2]", "expected an object at the top, got an array"),
        ('{"a": NaN}', "NaN is not allowed"),
        ('{"a": -Infinity}', "-Infinity is not allowed"),
        ('{"a": 1e400}', "the number 1e400 overflows a float"),
        (" \n", "the JSON file is empty"),
    ],
)
def test_read_json_refuses_each_cause_naming_the_file(tmp_path, text, expected):
    p = tmp_path / "in.json"
    p.write_text(text, encoding="utf-8")
    assert _fails(lambda: R.read_json(p), str(p), expected).startswith(f"{p}: ")


def test_read_json_file_level_problems(tmp_path):
    _fails(lambda: R.read_json(tmp_path / "nope.json"), "nope.json: no such JSON file")
    _fails(lambda: R.read_json(tmp_path), f"{tmp_path}: expected a JSON file, found a folder")
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"a": "caf\xe9"}'.encode("latin-1"))
    _fails(lambda: R.read_json(latin), "latin.json: not UTF-8 text (byte 0xe9")
    ok = tmp_path / "ok.json"
    ok.write_bytes(b'\xef\xbb\xbf{"a": NaN, "b": [1.5]}')  # a BOM is dropped; NaN where allowed
    got = R.read_json(ok, allow_nan=True)
    assert got["b"] == [1.5] and got["a"] != got["a"]
    assert R.read_json(ok, top=None, allow_nan=True)["b"] == [1.5]


def test_object_pairs_hook_refusal_keeps_its_message(tmp_path):
    p = tmp_path / "dup.json"
    p.write_text('{"a": 1, "a": 2}')

    def no_dupes(pairs):
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)

    _fails(lambda: R.read_json(p, object_pairs_hook=no_dupes), "dup.json: duplicate key")


def test_jsonl_names_file_and_line_and_skips_blank_lines(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"a": 1}\n\n{"a": "\\ud800"}\n', encoding="utf-8")
    _fails(lambda: R.read_jsonl(p), f"{p}:3: field 'a': holds a lone surrogate")
    p.write_text('{"a": 1}\n\n[2]\n')
    _fails(lambda: R.read_jsonl(p), f"{p}:3: expected an object at the top")
    p.write_text('{"a": 1}\n\n{"b": 2}\n')
    assert list(R.iter_jsonl(p)) == [(1, {"a": 1}), (3, {"b": 2})]
    p.write_text("\n \n")
    assert R.read_jsonl(p) == []
    _fails(lambda: R.read_jsonl(p, nonempty=True), "rows.jsonl: the JSONL file holds no entries")
    p.write_text('{"a": 1}\n{oops\n')
    _fails(lambda: R.read_jsonl(p, where="{path}, line {line}"), "rows.jsonl, line 2: not JSON")
    p.write_bytes(b'{"a": 1}\n{"b": "\xff"}\n')
    _fails(lambda: R.read_jsonl(p), f"{p}:2: not UTF-8 text")


# -------------------------------------------------------------------------------------------- CSV
def test_csv_columns_lines_and_numbers(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n\n3\n")
    assert list(R.iter_csv(p, columns=("a",))) == [(2, {"a": "1", "b": "2"}), (4, {"a": "3", "b": ""})]
    _fails(lambda: R.read_csv(p, columns=("a", "c")), "t.csv: the header lacks the column(s) c (it has a, b)")
    p.write_text("a\n1\n" + "x" * 200_000 + "\n")  # beyond the csv module's field size limit
    _fails(lambda: R.read_csv(p), f"{p}:3: malformed CSV")
    p.write_text("")
    _fails(lambda: R.read_csv(p), "t.csv: the CSV file is empty")
    p.write_bytes(b"a\n\xff\n")
    _fails(lambda: R.read_csv(p), f"{p}:2: not UTF-8")
    _fails(lambda: R.read_csv(tmp_path / "none.csv"), "none.csv: no such CSV file")


@pytest.mark.parametrize("value", ["x", "", None, True, "nan", "inf", float("inf"), 10**400, [1]])
def test_to_float_refuses_non_numbers_and_non_finite(value):
    _fails(lambda: R.to_float(value, "f.csv:3: column 'v'"), "f.csv:3: column 'v'")


@pytest.mark.parametrize("value", ["x", "2.5", 2.5, True, None, "1" * 5000, -1])
def test_to_int_refuses_what_is_not_a_whole_number(value):
    _fails(lambda: R.to_int(value, "f.csv:3: column 'k'", minimum=0), "f.csv:3: column 'k'")


def test_numbers_that_read():
    assert R.to_float(" 2.5 ", "w") == 2.5 and R.to_float("nan", "w", finite=False) != 0
    assert R.to_int(" 7 ", "w") == 7 and R.to_int(0, "w", minimum=0) == 0


# ------------------------------------------------------------------------------------ safetensors
def _tensors(tmp_path, tensors, name="t.safetensors", metadata=None):
    p = tmp_path / name
    save_file(tensors, str(p), metadata=metadata)
    return p


def test_safetensors_each_cause(tmp_path):
    good = _tensors(tmp_path, {"w": torch.ones(2, 3), "i": torch.arange(3)}, metadata={"emotion": "anger"})
    tensors, meta = R.read_safetensors(good, expect={"w": ((2, None), R.FLOATING)}, metadata=("emotion",))
    assert meta == {"emotion": "anger"} and torch.equal(tensors["w"], torch.ones(2, 3))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-5])
    _fails(lambda: R.read_safetensors(cut), "cut.safetensors: not a readable safetensors file")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    _fails(lambda: R.read_safetensors(junk), "junk.safetensors: not a readable")
    _fails(lambda: R.read_safetensors(tmp_path / "none.safetensors"), "none.safetensors: no such tensor file")
    _fails(lambda: R.read_safetensors(tmp_path), "expected a tensor file, found a folder")
    _fails(lambda: R.read_safetensors(good, expect={"v": (None, None)}), "tensor 'v' is missing")
    _fails(lambda: R.read_safetensors(good, expect={"w": ((3, 2), None)}), "tensor 'w': expected shape (3, 2)")
    _fails(lambda: R.read_safetensors(good, expect={"w": ((2, 3, 1), None)}), "expected shape (2, 3, 1)")
    _fails(lambda: R.read_safetensors(good, expect={"i": (None, R.FLOATING)}), "tensor 'i': expected a floating")
    _fails(
        lambda: R.read_safetensors(good, expect={"w": (None, (torch.float16,))}),
        "tensor 'w': expected dtype float16, got float32",
    )
    _fails(lambda: R.read_safetensors(good, metadata=("fingerprint",)), "metadata lacks fingerprint")
    for bad in (float("nan"), float("inf"), -float("inf")):
        p = _tensors(tmp_path, {"w": torch.tensor([1.0, bad])}, name="nan.safetensors")
        _fails(lambda p=p: R.read_safetensors(p), "nan.safetensors: tensor 'w': holds NaN or infinite")
        assert R.read_safetensors(p, finite=False)[0]["w"].shape == (2,)


def test_gguf_magic_and_truncation(tmp_path):
    from circuits.interop.controlvector import ControlVector

    good = ControlVector({1: torch.ones(4)}, "llama").save(tmp_path / "g.gguf")
    assert R.read_gguf(good).fields["general.architecture"].contents() == "controlvector"
    other = tmp_path / "o.gguf"
    other.write_bytes(b"GGML" + good.read_bytes()[4:])
    _fails(lambda: R.read_gguf(other), "o.gguf: not a GGUF file (its first bytes are b'GGML'")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good.read_bytes()[:30])
    _fails(lambda: R.read_gguf(cut), "cut.gguf: not a readable GGUF file")
    _fails(lambda: R.read_gguf(tmp_path / "none.gguf"), "none.gguf: no such GGUF file")


# -------------------------------------------------------------------------------------- fuzzing
def _only_input_error(fn, path):
    """``fn(path)`` gives a value, or an InputError naming the file on one line; anything else fails."""
    try:
        return fn(path)
    except InputError as err:
        assert str(path) in str(err) and "\n" not in str(err), str(err)
        return None


json_trees = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.sampled_from(["\ud800", "\udfff", "a\udc80b"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=10,
)


@FUZZ
@given(
    tree=json_trees,
    depth=st.integers(0, 3000),
    digits=st.integers(1, 6000),
    cut=st.integers(0, 200),
    raw=st.binary(max_size=200),
    kind=st.sampled_from(["tree", "deep", "int", "cut", "raw"]),
    allow_nan=st.booleans(),
)
def test_fuzz_json_and_jsonl(tmp_path, tree, depth, digits, cut, raw, kind, allow_nan):
    text = json.dumps({"k": tree})
    data = {
        "tree": text.encode("utf-8", "surrogatepass"),
        "deep": ("[" * depth + "1" + "]" * depth).encode(),
        "int": ('{"n": ' + "9" * digits + "}").encode(),
        "cut": text.encode("utf-8", "surrogatepass")[:cut],
        "raw": raw,
    }[kind]
    p = tmp_path / "f.json"
    p.write_bytes(data)
    got = _only_input_error(lambda q: R.read_json(q, top=None, allow_nan=allow_nan), p)
    if got is not None:  # what loads is UTF-8 clean, shallow, and finite where asked
        json.dumps(got).encode("utf-8")
    _only_input_error(lambda q: R.read_jsonl(q, top=None, allow_nan=allow_nan), p)


@FUZZ
@given(raw=st.binary(max_size=200), cells=st.lists(st.text(max_size=10), max_size=12))
def test_fuzz_csv(tmp_path, raw, cells):
    p = tmp_path / "f.csv"
    p.write_bytes(raw if len(cells) % 2 else ("a,b\n" + "\n".join(cells)).encode("utf-8", "surrogatepass"))
    _only_input_error(lambda q: R.read_csv(q, columns=("a",)), p)


@FUZZ
@given(cut=st.integers(0, 400), flips=st.lists(st.tuples(st.integers(0, 399), st.integers(0, 255)), max_size=4))
def test_fuzz_safetensors_and_gguf(tmp_path, cut, flips):
    from circuits.interop.controlvector import ControlVector

    st_path = _tensors(tmp_path, {"w": torch.ones(4, 3), "b": torch.zeros(3)}, name="good.safetensors")
    gguf_path = ControlVector({1: torch.ones(8), 2: torch.ones(8)}, "llama").save(tmp_path / "good.gguf")
    for good, fn in ((st_path, R.read_safetensors), (gguf_path, R.read_gguf)):
        data = bytearray(good.read_bytes())
        for i, b in flips:
            data[i % len(data)] = b
        p = tmp_path / f"fuzz{good.suffix}"
        p.write_bytes(bytes(data[: cut if cut < len(data) else len(data)]))
        _only_input_error(fn, p)


# ------------------------------------------------------------------------ the loaders that use it
@pytest.fixture(scope="module")
def small_store(tiny_models, tmp_path_factory):
    """A one-scenario store of tiny Qwen2 and its directions (read-only: tests copy it)."""
    from circuits.core.sev import load_sev
    from circuits.discovery.directions import emotion_directions
    from circuits.discovery.store import StoreConfig, build_store

    model = tiny_models["qwen2"]
    root = tmp_path_factory.mktemp("small")
    store = build_store(model, load_sev(), root / "store", StoreConfig(limit=1, shard_rows=10), progress=False)
    emotion_directions(store).save(root / "directions")
    return model, root


def _copy(root, tmp_path):
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(root, dst)
    return dst


def _edit_json(path, edit):
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda m: m.update(version="1"), "field 'version'"),
        (lambda m: m.update(model=None), "field 'model'"),
        (lambda m: m["model"]["arch"].update(n_layers=0), "field 'model.arch.n_layers'"),
        (lambda m: m.update(rows={}), "field 'rows'"),
        (lambda m: m["rows"][2].update(kind="other"), "field 'rows[2].kind'"),
        (lambda m: m["rows"][1].pop("valence"), "field 'rows[1].valence'"),
        (lambda m: m["rows"][0].update(accepted="yes"), "field 'rows[0].accepted'"),
        (lambda m: m["rows"][0].update(colour="red"), "field 'rows[0].colour'"),
        (lambda m: m["shards"][0].update(stop=10**6), "field 'shards[0]'"),
        (lambda m: m["shards"][0].update(file="../x.safetensors"), "field 'shards[0]'"),
        (lambda m: m.update(complete="yes"), "field 'complete'"),
        (lambda m: m["rows"][0].update(user="\ud800"), "field 'rows[0].user': holds a lone surrogate"),
    ],
)
def test_store_meta_fields_are_checked(small_store, tmp_path, edit, expected):
    from circuits.discovery.store import ActivationStore

    model, root = small_store
    run = _copy(root, tmp_path)
    _edit_json(run / "store" / "meta.json", edit)
    _fails(lambda: ActivationStore.load(run / "store", model), f"{run / 'store' / 'meta.json'}: ", expected)


def test_store_shards_and_missing_meta(small_store, tmp_path):
    from circuits.discovery.store import ActivationStore

    model, root = small_store
    run = _copy(root, tmp_path)
    store = run / "store"
    assert len(ActivationStore.load(store, model).rows) == len(json.loads((store / "meta.json").read_text())["rows"])
    shard = sorted(store.glob("shard_*.safetensors"))[0]
    good = shard.read_bytes()
    shard.write_bytes(good[: len(good) // 3])
    _fails(lambda: ActivationStore.load(store), f"{shard}: not a readable safetensors file")
    tensors = R.load_tensors(_write_back(shard, good))
    for name, bad in (("resid_post", lambda t: t[:-1]), ("z", lambda t: t.fill_(float("nan")))):
        save_file({**tensors, name: bad(tensors[name].clone()).contiguous()}, str(shard))
        _fails(lambda: ActivationStore.load(store), str(shard), f"tensor '{name}'")
    shard.unlink()
    _fails(lambda: ActivationStore.load(store), f"{shard}: no such store shard")
    (store / "meta.json").unlink()
    _fails(lambda: ActivationStore.load(store), f"{store}: not an activation store (no meta.json)")


def _write_back(path, data):
    path.write_bytes(data)
    return path


def test_directions_files_are_checked(small_store, tmp_path):
    from circuits.discovery.directions import Directions

    _, root = small_store
    run = _copy(root, tmp_path)
    d, meta, tens = run / "directions", run / "directions.json", run / "directions.safetensors"
    assert Directions.load(d).unit.shape[0] == 2
    good = json.loads(meta.read_text())
    for edit, expected in (
        (lambda m: m.update(emotions=["joy"]), "field 'emotions': unknown emotion 'joy'"),
        (lambda m: m.update(emotions=[]), "field 'emotions'"),
        (lambda m: m.update(n_groups=-1), "field 'n_groups'"),
        (lambda m: m.update(fingerprint=None), "field 'fingerprint'"),
        (lambda m: m.update(emotions=m["emotions"][:-1]), "expected shape (2, *, 5, *)"),
    ):
        meta.write_text(json.dumps(good))
        _edit_json(meta, edit)
        _fails(lambda: Directions.load(d), "directions.", expected)
    meta.write_text(json.dumps(good))
    blob = tens.read_bytes()
    tens.write_bytes(blob[:100])
    _fails(lambda: Directions.load(d), f"{tens}: not a readable safetensors file")
    t = R.load_tensors(_write_back(tens, blob))
    save_file({"unit": t["unit"], "diff": t["diff"].fill_(float("inf"))}, str(tens))
    _fails(lambda: Directions.load(d), f"{tens}: tensor 'diff': holds NaN or infinite values")
    meta.unlink()
    _fails(lambda: Directions.load(d), f"{meta}: no such directions file")


def test_run_readers_name_file_and_line(small_store, tmp_path):
    from circuits.runs import layout
    from circuits.runs.rundir import Run

    model, root = small_store
    path = _copy(root, tmp_path)
    run = Run(path, check=False)
    (path / "summary.json").write_text('{"model": ' + "[" * 100_000 + "}")
    _fails(lambda: run.json("summary.json"), "summary.json: nested too deep")
    (path / "replies.jsonl").write_text('{"a": 1}\n[1]\n')
    _fails(lambda: run.jsonl("replies.jsonl"), "replies.jsonl:2: expected an object")
    ev = path / layout.EMOTION_VECTORS
    save_file({"ev": torch.zeros(3, 2, 64)}, str(ev))
    _fails(lambda: run.emotion_vectors(model), f"{ev}: tensor 'ev': expected shape (6, 2, 64), got (3, 2, 64)")
    save_file({"ev": torch.full((6, 2, 64), float("nan"))}, str(ev))
    _fails(lambda: run.emotion_vectors(model), f"{ev}: tensor 'ev': holds NaN")
    save_file({"vectors": torch.zeros(6, 2, 64)}, str(ev))
    _fails(lambda: run.emotion_vectors(model), "tensor 'ev' is missing")
    (path / layout.SWEEPS_CSV).write_text("emotion,layer,kind,mode,k,selection\nanger,0,neuron,a,1,top\n")
    _fails(lambda: run.sweeps(), "sweeps.csv: the header lacks the column(s) delta_s")
    (path / layout.SWEEPS_CSV).write_text(
        "emotion,layer,kind,mode,k,selection,delta_s\nanger,0,neuron,a,1,top,0.5\nanger,x,neuron,a,1,top,0.5\n"
    )
    _fails(lambda: run.sweeps(), f"{path / layout.SWEEPS_CSV}:3: column 'layer': expected a whole number, got 'x'")
    (path / layout.LOGIT_LENS_CSV).write_text("anger\n1e999\n")
    _fails(lambda: run.logit_lens(["anger"]), f"{path / layout.LOGIT_LENS_CSV}:2: column 'anger': expected a finite")
    (path / layout.INFLUENCE_CSV).write_text("emotion,layer,sublayer,normalised\nanger,7,attn,0.1\n")
    _fails(lambda: run.influence(["anger"], 2), "influence.csv:2: column 'layer': layer 7 beyond")
    _fails(lambda: run.scores(), "scores.safetensors: no such score file")


def test_va_axes_for_atlas_are_checked(small_store, tmp_path):
    from circuits.runs.atlas import _load_va
    from circuits.va.subspace import VAAxes

    model, _ = small_store
    va = tmp_path / "va"
    va.mkdir()
    axes = VAAxes(1, torch.ones(64) / 8, torch.ones(64) / 8, 2, {"valence": 1.0}, {"valence": 0.5}, ["anger"])
    axes.fingerprint = str(model.fingerprint)
    axes.save(va / "axes")
    (va / "summary.json").write_text(json.dumps({"model": {"fingerprint": str(model.fingerprint)}}))
    assert _load_va(model, va)[0].layer == 1
    good = (va / "axes.json").read_text()
    for edit, expected in (
        (lambda d: d.update(layer="1"), "field 'layer': expected a whole number"),
        (lambda d: d.update(extra=1), "unknown field 'extra'"),
        (lambda d: d.update(emotions="anger"), "field 'emotions'"),
        (lambda d: d.update(layer=9), "axes of size 64 at layer 9 do not fit"),
    ):
        (va / "axes.json").write_text(good)
        _edit_json(va / "axes.json", edit)
        _fails(lambda: _load_va(model, va), "axes.json: ", expected)
    (va / "axes.json").write_text(good)
    save_file({"valence": torch.ones(32), "arousal": torch.ones(32)}, str(va / "axes.safetensors"))
    _fails(lambda: _load_va(model, va), "axes of size 32 at layer 1 do not fit")
    save_file({"valence": torch.ones(64), "arousal": torch.ones(32)}, str(va / "axes.safetensors"))
    _fails(lambda: VAAxes.load(va / "axes"), "axes.safetensors: 'valence' (64,) and 'arousal' (32,) differ")
    (va / "axes.safetensors").write_bytes(b"\x08\x00")
    _fails(lambda: VAAxes.load(va / "axes"), "axes.safetensors: not a readable")


def test_va_and_probe_files(tmp_path):
    from circuits.va import load_labelled_texts
    from circuits.va.probes import load_refusal_phrases, load_sycophancy

    phrases = tmp_path / "phrases.txt"
    phrases.write_bytes("I can\x92t\n".encode("latin-1"))
    _fails(lambda: load_refusal_phrases(phrases), f"{phrases}:1: not UTF-8 text (byte 0x92")
    _fails(lambda: load_refusal_phrases(tmp_path / "none.txt"), "none.txt: no such refusal-phrase file")
    syc = tmp_path / "syc.jsonl"
    syc.write_text("\n\n")
    _fails(lambda: load_sycophancy(syc), f"{syc}: no sycophancy items")
    syc.write_text('{"question": "' + "1" * 10 + '", "answer_matching_behavior": ' + "2" * 5000 + "}\n")
    _fails(lambda: load_sycophancy(syc), f"{syc}:1: an integer has more than")
    texts = tmp_path / "t.jsonl"
    texts.write_text('{"text": "fine", "label": "anger"}\n{"text": "\\ud800", "label": "anger"}\n')
    _fails(lambda: load_labelled_texts(texts), f"{texts}:2: field 'text': holds a lone surrogate")


def test_concept_texts_with_an_unknown_label_name_file_and_line(tmp_path):
    from circuits.discovery.concept_vectors import load_concept_texts

    p = tmp_path / "concepts.jsonl"
    p.write_text('{"text": "I am furious.", "label": "anger"}\n\n{"text": "Yay.", "label": "joy"}\n')
    _fails(lambda: load_concept_texts(p), f"{p}:3: field 'label': unknown label 'joy'")
    c = tmp_path / "concepts.csv"
    c.write_text("text,labels\nI am furious.,anger\nMeh.,neutral;boredom\n")
    _fails(lambda: load_concept_texts(c), f"{c}:3: field 'labels': unknown label 'boredom'")
    c.write_text("text,labels\nI am furious.,anger\nCalm day.,neutral\n")
    assert load_concept_texts(c) == [("I am furious.", ("anger",)), ("Calm day.", ("neutral",))]
    p.write_text("\n")
    _fails(lambda: load_concept_texts(p), f"{p}: the concept-text file holds no texts")


def test_judge_files_go_through_the_layer(tmp_path):
    from circuits.judges.calibrate import read_labelled
    from circuits.judges.lexicon import load_lexicon

    lab = tmp_path / "replies.jsonl"
    lab.write_text('{"text": "ok", "label": "anger"}\n{"text": "' + "\\ud800" + '", "label": "anger"}\n')
    _fails(lambda: read_labelled(lab), f"{lab}, line 2: field 'text': holds a lone surrogate")
    lex = tmp_path / "lex.json"
    lex.write_text('{"version": 1, "emotions": ' + "[" * 100_000 + "}")
    _fails(lambda: load_lexicon(lex), f"malformed lexicon file {lex}: nested too deep")
    lex.write_text('{"version": 1, "include": "other.json"}')
    (tmp_path / "other.json").write_text('{"version": ' + "9" * 5000 + "}")
    _fails(lambda: load_lexicon(lex), "other.json: an integer has more than")


@pytest.mark.parametrize("bad", [None, 3, ["a.json"], ""])
def test_loaders_refuse_a_path_that_is_not_a_path(bad):
    from circuits.circuit import Circuit, load_circuits
    from circuits.core.sev import load_sev
    from circuits.discovery.directions import Directions
    from circuits.discovery.store import ActivationStore
    from circuits.interop.controlvector import ControlVector
    from circuits.va.subspace import VAAxes

    for fn, name in (
        (Circuit.load, "Circuit.load: path"),
        (load_circuits, "load_circuits: out_dir"),
        (ControlVector.load, "ControlVector.load: path"),
        (ActivationStore.load, "ActivationStore.load: path"),
        (Directions.load, "Directions.load: path"),
        (VAAxes.load, "VAAxes.load: path"),
    ):
        _fails(lambda fn=fn: fn(bad), f"{name}: expected a file path")
    if bad is not None:  # None is load_sev's default (the shipped split)
        _fails(lambda: load_sev(bad), "load_sev: path: expected a file path")


def test_a_signal_turned_into_a_read_error_unwinds_instead_of_blaming_the_file(tmp_path, monkeypatch):
    """torch turns a KeyboardInterrupt raised inside its C code (the CLI's SIGTERM handler firing while a
    shard is read) into a ValueError; once a termination signal was noted, the reader re-raises it as
    the signal's exception instead of reporting a damaged file (which exited 2 and blamed a healthy
    shard)."""
    import signal

    from circuits.core import signals
    from circuits.core.readers import read_safetensors

    bad = tmp_path / "shard.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    monkeypatch.setattr(signals, "_RECEIVED", [])
    with pytest.raises(InputError, match="not a readable safetensors file"):
        read_safetensors(bad)
    signals.note(signal.SIGTERM)
    with pytest.raises(signals.Terminated):
        read_safetensors(bad)
    monkeypatch.setattr(signals, "_RECEIVED", [int(signal.SIGINT)])
    with pytest.raises(KeyboardInterrupt):
        read_safetensors(bad)
