"""Activation store: values match a direct forward pass, resume, reuse, refusal, elicitation."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.core.artifacts import InputError
from circuits.core.sev import DEFAULT_TRAIN, PromptSettings, SEVDataset, load_sev
from circuits.discovery.store import (
    ActivationStore,
    StoreConfig,
    StoreMismatchError,
    build_store,
    elicit,
    last_token_activations,
    plan_rows,
)
from circuits.judges.lexicon import Judgement


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, qwen_tiny):
    out = tmp_path_factory.mktemp("store")
    return build_store(qwen_tiny, load_sev(), out, StoreConfig(limit=3, shard_rows=20, batch_size=7), progress=False)


def test_rows_and_shapes(small_store, qwen_tiny):
    a = qwen_tiny.arch
    n = 3 * 3 * 6 + 3 * 3
    assert len(small_store.rows) == n and small_store.complete
    assert small_store.tensor("resid_mid").shape == (n, a.n_layers, a.d_model)
    assert small_store.tensor("z").shape == (n, a.n_layers, a.n_heads, a.d_head)
    assert small_store.tensor("mlp_post").shape == (n, a.n_layers, a.d_mlp)
    assert len(small_store.index("neutral")) == 9 and len(small_store.index("emotion", "fear")) == 9


def test_values_match_unpadded_single_forward(small_store, qwen_tiny):
    """Batched, left-padded, sharded capture equals one unpadded forward pass per prompt."""
    for i in (0, 17, 40, len(small_store.rows) - 1):
        prompt = small_store.prompts(qwen_tiny, [i])
        direct = last_token_activations(qwen_tiny, prompt)
        for name in ("resid_mid", "resid_post", "z", "mlp_post", "final_scale", "attn_mean"):
            torch.testing.assert_close(small_store.tensor(name)[i], direct[name][0], atol=2e-5, rtol=1e-4)


STORE_CFG = StoreConfig(limit=3, shard_rows=20, batch_size=7)


def _crashed_after_two_shards(model, out):
    """A store of :data:`STORE_CFG` in ``out`` as a crash after its second shard leaves it (later shards
    dropped from meta.json and disk); returns the meta written."""
    build_store(model, load_sev(), out, STORE_CFG, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    for shard in meta["shards"][2:]:
        (out / shard["file"]).unlink()
    meta["shards"], meta["complete"] = meta["shards"][:2], False
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


def test_a_store_from_before_attn_mean_resumes_without_it(tmp_path, qwen_tiny, small_store):
    """A partial store written before stores listed their tensors resumes with the tensors it has (its
    shards stay alike), and its Emotion Vectors come from a second pass, equal to the store's own."""
    from safetensors.torch import load_file, save_file

    from circuits.steer.methods import emotion_vectors

    out = tmp_path / "old"
    meta = _crashed_after_two_shards(qwen_tiny, out)
    for shard in meta["shards"]:
        tensors = load_file(str(out / shard["file"]))
        del tensors["attn_mean"]
        save_file(tensors, str(out / shard["file"]))
    del meta["tensors"]
    (out / "meta.json").write_text(json.dumps(meta))
    old = build_store(qwen_tiny, load_sev(), out, STORE_CFG, progress=False)
    assert old.complete and "tensors" not in old.meta
    with pytest.raises(KeyError, match="attn_mean"):
        old.tensor("attn_mean")
    torch.testing.assert_close(old.tensor("z"), small_store.tensor("z"))
    torch.testing.assert_close(
        emotion_vectors(qwen_tiny, old, progress=False),
        emotion_vectors(qwen_tiny, small_store, progress=False),
        rtol=1e-4,
        atol=1e-5,
    )


def test_resume_after_interruption(tmp_path, qwen_tiny, small_store):
    out = tmp_path / "s"
    _crashed_after_two_shards(qwen_tiny, out)
    resumed = build_store(qwen_tiny, load_sev(), out, STORE_CFG, progress=False)
    assert resumed.complete
    torch.testing.assert_close(resumed.tensor("z"), small_store.tensor("z"))


def test_reuse_and_refusal(tmp_path, tiny_models):
    q, l = tiny_models["qwen2"], tiny_models["llama"]
    out = tmp_path / "s"
    cfg = StoreConfig(limit=2, emotions=("anger", "fear"), neutral=False)
    first = build_store(q, load_sev(), out, cfg, progress=False)
    mtime = (out / first.meta["shards"][0]["file"]).stat().st_mtime_ns
    again = build_store(q, load_sev(), out, cfg, progress=False)
    assert (out / again.meta["shards"][0]["file"]).stat().st_mtime_ns == mtime  # reused, not rewritten
    with pytest.raises(StoreMismatchError, match="model fingerprint"):
        build_store(l, load_sev(), out, cfg, progress=False)
    with pytest.raises(StoreMismatchError, match="store config"):
        build_store(q, load_sev(), out, StoreConfig(limit=3, emotions=("anger", "fear"), neutral=False), progress=False)
    with pytest.raises(StoreMismatchError, match="not for"):
        ActivationStore.load(out, l)
    assert ActivationStore.load(out, q).fingerprint == q.fingerprint  # nothing was damaged


def test_a_store_written_before_a_prompt_field_reads_and_is_reused_with_its_default(tmp_path, qwen_tiny):
    """A reused store from before ``prompt_family`` (and ``placement``) gives back complete settings, so a run
    built on it records them; a broken ``prompts`` field is refused naming the file."""
    out = tmp_path / "s"
    cfg = StoreConfig(limit=2, emotions=("anger", "fear"), neutral=False)
    build_store(qwen_tiny, load_sev(), out, cfg, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    for key in ("prompt_family", "implicit_split", "placement", "user_instruction", "instruction_position"):
        del meta["prompts"][key]
    (out / "meta.json").write_text(json.dumps(meta))
    again = build_store(qwen_tiny, load_sev(), out, cfg, progress=False)
    assert again.meta["prompts"] == PromptSettings().to_dict()
    assert ActivationStore.load(out).meta["prompts"]["prompt_family"] == "explicit"
    meta["prompts"]["emotion_system"] = 5
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"meta\.json: field 'prompts'"):
        ActivationStore.load(out)


class _StubJudge:
    """Accepts every reply except those at positions ``reject`` (labelled as another emotion); records
    the replies it was given."""

    def __init__(self, emotions: list[str], reject: set[int]):
        self.emotions, self.reject, self.calls = emotions, reject, []

    def __call__(self, replies):
        self.calls.append(list(replies))
        assert len(replies) == len(self.emotions)
        other = {e: "disgust" if e != "disgust" else "anger" for e in self.emotions}
        return [Judgement(other[e] if i in self.reject else e, {}, ()) for i, e in enumerate(self.emotions)]


def test_elicit_marks_exactly_the_rejected_rows(qwen_tiny):
    cfg = StoreConfig(limit=2, emotions=("anger", "fear", "disgust"))
    rows = plan_rows(load_sev().subset(2), cfg)
    emo = [r.emotion for r in rows if r.kind == "emotion"]
    stub = _StubJudge(emo, {0, 4, 5, 17})
    elicit(qwen_tiny, rows, PromptSettings(), max_new_tokens=3, judge=stub, progress=False, fluency=None)
    assert len(stub.calls) == 1 and len(emo) == 2 * 3 * 3
    for i, r in enumerate(rows):
        if r.kind == "neutral":
            assert r.accepted and r.reply is None and r.judged is None
        else:
            assert r.accepted == (i not in {0, 4, 5, 17})
            assert r.reply == stub.calls[0][i]
            assert r.judged == (r.emotion if r.accepted else ("anger" if r.emotion == "disgust" else "disgust"))
    with pytest.raises(ValueError, match="verdicts"):
        elicit(qwen_tiny, rows, PromptSettings(), max_new_tokens=2, judge=lambda t: [], progress=False)
    # a reply the fluency check flags is rejected whatever the judge says: verdict "broken"
    from circuits.judges.fluency import FluencyCheck, FluencyRule

    every = FluencyCheck(FluencyRule(min_words=0, min_function_share=2.0))
    elicit(qwen_tiny, rows, PromptSettings(), max_new_tokens=3, judge=stub, progress=False, fluency=every)
    assert all(not r.accepted and r.judged == "broken" for r in rows if r.kind == "emotion")


def test_elicited_store_excludes_rejected_rows(tmp_path, qwen_tiny):
    cfg = StoreConfig(limit=2, emotions=("anger", "fear"))
    rows = plan_rows(load_sev().subset(2), cfg)
    emo = [r.emotion for r in rows if r.kind == "emotion"]
    reject = {1, 6, 7}
    stub = _StubJudge(emo, reject)
    store = build_store(
        qwen_tiny,
        load_sev(),
        tmp_path,
        cfg,
        elicitation=True,
        elicit_max_new_tokens=3,
        judge=stub,
        progress=False,
        fluency=None,
    )
    n_emo = len(emo)
    assert [i for i, r in enumerate(store.rows) if not r.accepted] == sorted(reject)
    assert store.index("emotion").tolist() == [i for i in range(n_emo) if i not in reject]
    assert store.index("emotion", accepted_only=False).tolist() == list(range(n_emo))
    assert store.index("emotion", "fear").tolist() == [i for i in range(n_emo) if emo[i] == "fear" and i not in reject]
    assert store.index("neutral").tolist() == list(range(n_emo, len(store.rows)))  # neutral rows are never judged
    assert [r.reply for r in store.rows[:n_emo]] == stub.calls[0]
    # the verdicts live in meta.json: reloaded and reused stores keep them without judging again
    assert [i for i, r in enumerate(ActivationStore.load(tmp_path, qwen_tiny).rows) if not r.accepted] == sorted(reject)
    again = build_store(qwen_tiny, load_sev(), tmp_path, cfg, elicitation=True, judge=stub, progress=False)
    assert len(stub.calls) == 1 and again.index("emotion").tolist() == store.index("emotion").tolist()


def _snapshot(path):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(path.iterdir())}


def test_refusal_of_other_dataset_or_prompts_leaves_store_intact(tmp_path, qwen_tiny):
    cfg = StoreConfig(limit=2, emotions=("anger", "fear"), neutral=False)
    out = tmp_path / "s"
    build_store(qwen_tiny, load_sev(), out, cfg, progress=False)
    before = _snapshot(out)
    sev = load_sev()
    # another SEV file: the shipped one with one event edited
    lines = DEFAULT_TRAIN.read_text().splitlines()
    first = json.loads(lines[0])
    first["event"]["neutral"] += " It was Tuesday."
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    # another subset of scenarios (same limit, same prompts): the file without its first scenario
    other_subset = SEVDataset(sev.scenarios[1:])
    cases = [
        (
            load_sev(edited),
            PromptSettings(),
            r"dataset sha256 .*path: store '.*sev\.jsonl', requested '.*edited\.jsonl'",
        ),
        (other_subset, PromptSettings(), r"dataset sha256 .*sha256: store"),
        (
            sev,
            PromptSettings(emotion_system="Answer with {emotion}."),
            r"prompt settings \(emotion_system: store 'Always reply in \{emotion\}.*requested 'Answer with",
        ),
        (sev, PromptSettings(neutral_system="Be brief."), r"prompt settings \(neutral_system: store"),
    ]
    for dataset, settings, pattern in cases:
        with pytest.raises(StoreMismatchError, match=pattern) as err:
            build_store(qwen_tiny, dataset, out, cfg, settings, progress=False)
        assert str(out) in str(err.value)
        assert _snapshot(out) == before  # nothing rewritten, added or removed
    with pytest.raises(StoreMismatchError, match="elicitation"):
        build_store(qwen_tiny, sev, out, cfg, elicitation=True, judge=lambda t: pytest.fail("judged"), progress=False)
    assert _snapshot(out) == before
    assert ActivationStore.load(out, qwen_tiny).complete
