"""The HF-classifier judge on a tiny local classifier, and the LLM judge client on a local server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from circuits.core.emotions import LABELS
from circuits.judges.base import ClassifierJudge, LLMJudge, LLMJudgeError


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification

    from circuits.toy.tokenizer import build_tokenizer

    out = tmp_path_factory.mktemp("clf")
    tok = build_tokenizer(["I am so happy today", "this is disgusting"] * 5, vocab_size=300)
    names = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=7,
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    with torch.no_grad():  # make "joy" win for every input: a known answer
        model.classifier.bias.copy_(torch.tensor([0, 0, 0, 5.0, 0, 0, 0]))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_classifier_judge_maps_labels(tiny_classifier):
    judge = ClassifierJudge(str(tiny_classifier))
    out = judge(["What a day.", "The bus was late.", "x"])
    assert [j.label for j in out] == ["happiness"] * 3  # joy -> happiness
    for j in out:
        assert set(j.scores) == set(LABELS) and sum(j.scores.values()) == pytest.approx(1.0, abs=1e-5)
    custom = ClassifierJudge(str(tiny_classifier), label_map={"joy": "surprise", "anger": "anger"})
    assert custom.label(["ok"]) == ["surprise"]
    with pytest.raises(ValueError, match="label_map"):
        ClassifierJudge(str(tiny_classifier), label_map={"joy": "elation"})
    with pytest.raises(ValueError, match="none of the classifier's labels"):
        ClassifierJudge(str(tiny_classifier), label_map={"ecstasy": "happiness"})


class _Handler(BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        prompt = body["messages"][0]["content"]
        if "BROKEN" in prompt:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        target = prompt.split("Target emotion: ")[1].split("\n")[0]
        reply = prompt.split('Reply: """')[1].split('"""')[0]
        answer = "Maybe?" if "unsure" in reply else ("Yes." if target in reply else "no")
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Handler.requests.clear()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_llm_judge_client(server, monkeypatch):
    monkeypatch.setenv("EMOCIRCUITS_JUDGE_URL", server)
    monkeypatch.setenv("EMOCIRCUITS_JUDGE_KEY", "secret")
    monkeypatch.setenv("EMOCIRCUITS_JUDGE_MODEL", "judge-1")
    judge = LLMJudge()
    got = judge.match(["pure fear here", "calm words", "I am unsure"], ["fear", "anger", "fear"])
    assert got == [True, False, False] and judge.unparsed == 1
    req = _Handler.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer secret"
    assert req["body"]["model"] == "judge-1" and req["body"]["temperature"] == 0
    assert "Target emotion: fear" in req["body"]["messages"][0]["content"]
    with pytest.raises(LLMJudgeError, match="HTTP 500"):
        judge.match(["BROKEN"], ["fear"])


def test_llm_judge_needs_configuration(monkeypatch):
    for var in ("EMOCIRCUITS_JUDGE_URL", "OPENAI_BASE_URL", "EMOCIRCUITS_JUDGE_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(LLMJudgeError, match="EMOCIRCUITS_JUDGE_URL"):
        LLMJudge()


def test_make_judge_specs_and_names(tiny_classifier):
    from circuits.judges.base import JudgeSpecError, judge_matches, judge_name, make_judge
    from circuits.judges.lexicon import LexiconJudge

    lex = make_judge("lexicon")
    from circuits.judges.base import DEFAULT_JUDGE

    assert isinstance(lex, LexiconJudge) and judge_name(lex) == "lexicon" and judge_name(None) == DEFAULT_JUDGE
    clf = make_judge(f"classifier:{tiny_classifier}")
    assert isinstance(clf, ClassifierJudge) and judge_name(clf) == f"classifier:{tiny_classifier}"
    # the tiny classifier says joy (-> happiness) for everything: a known answer
    hits, verdicts = judge_matches(clf, ["a", "b"], ["happiness", "fear"])
    assert hits == [True, False] and verdicts == ["happiness", "happiness"]
    hits, verdicts = judge_matches(lex, ["I am furious about this!", "The bus came."], ["anger", "anger"])
    assert hits == [True, False] and verdicts == ["anger", "neutral"]
    for bad in ("vibes", "classifier:", "llm-ish"):
        with pytest.raises(JudgeSpecError, match="unknown judge"):
            make_judge(bad)
    with pytest.raises(JudgeSpecError, match="could not be loaded"):
        make_judge("classifier:/no/such/classifier")
    with pytest.raises(ValueError, match="targets"):
        judge_matches(lex, ["x"], [])


def test_every_judge_drives_evaluation_and_elicitation(server, monkeypatch, tiny_classifier, tiny_models, tmp_path):
    """The LLM (match) judge and a classifier judge plug into evaluate_methods and the store's
    elicitation; the judge is recorded; answers are the judges' known answers."""
    from circuits.core.sev import load_sev
    from circuits.discovery.store import StoreConfig, build_store
    from circuits.judges.base import make_judge
    from circuits.runs.evaluate import write_evaluation
    from circuits.steer.metrics import EvalConfig, evaluate_methods

    monkeypatch.setenv("EMOCIRCUITS_JUDGE_URL", server)
    monkeypatch.setenv("EMOCIRCUITS_JUDGE_MODEL", "judge-1")
    model = tiny_models["qwen2"]
    cfg = EvalConfig(
        methods=("prompting",), emotions=("happiness", "fear"), limit=1, max_new_tokens=6, min_new_tokens=2
    )
    test = load_sev()
    clf = make_judge(f"classifier:{tiny_classifier}")
    res = evaluate_methods(model, test, {}, cfg, judge=clf, progress=False, fluency=None)  # the judges alone
    assert res["judge"] == f"classifier:{tiny_classifier}"
    assert res["methods"]["prompting"]["per_emotion"] == {"happiness": 1.0, "fear": 0.0}
    llm = make_judge("llm")
    res = evaluate_methods(model, test, {}, cfg, judge=llm, progress=False, fluency=None)
    assert res["judge"] == "llm:judge-1" and len(_Handler.requests) == res["methods"]["prompting"]["n"] == 6
    # the server says yes only when the reply contains the target word; a random model's replies do not
    assert res["methods"]["prompting"]["accuracy"] == 0.0
    assert set(res["methods"]["prompting"]["judged"]) == {"no match"}
    write_evaluation(res, tmp_path / "rep")
    assert "judge `llm:judge-1`" in (tmp_path / "rep" / "report.md").read_text()
    store = build_store(
        model,
        test,
        tmp_path / "store",
        StoreConfig(limit=1, emotions=("happiness", "fear")),
        elicitation=True,
        elicit_max_new_tokens=4,
        judge=llm,
        progress=False,
        fluency=None,
    )
    emo = [r for r in store.rows if r.kind == "emotion"]
    assert emo and all(r.judged == "no match" and not r.accepted for r in emo)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"spec": None}, "judge: expected a spec string"),
        ({"spec": 3}, "judge: expected a spec string"),
        ({"spec": ["lexicon"]}, "judge: expected a spec string"),
        ({"spec": "  "}, "judge: expected a spec string"),
        ({"spec": "lexicon", "mode": None}, "judge mode must be one of"),
        ({"spec": "lexicon", "mode": ["match"]}, "judge mode must be one of"),
        ({"spec": "lexicon", "device": None}, "judge device: expected a device name"),
    ],
)
def test_make_judge_refuses_wrong_types_as_input_errors(kwargs, expected):
    from circuits.judges.base import JudgeSpecError, make_judge

    with pytest.raises(JudgeSpecError, match=expected):
        make_judge(**kwargs)


def test_the_default_judge_follows_the_model_in_the_library(tmp_path):
    """Python callers that give no judge get the same judge as the command line: the lexicon for the toy
    model under every name it goes by, the head that does not read through SmolLM2 for SmolLM2, the
    default judge for any other model."""
    from circuits.core.model import load_model
    from circuits.core.sev import load_sev
    from circuits.judges.base import DEFAULT_JUDGE, default_judge_instance, judge_name, recommended_judge
    from circuits.steer.metrics import EvalConfig, evaluate_methods
    from circuits.toy import TOY_MODEL_DIR

    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "train_log.json").write_text("{}")
    (trained / "config.json").write_text("{}")
    for name in ("toy", str(TOY_MODEL_DIR), "/elsewhere/circuits/toy/model", str(trained)):
        assert recommended_judge(name) == "lexicon", name
    assert recommended_judge("smollm2-135m") == "learned-minilm"
    for name in (None, str(tmp_path), "Qwen/Qwen2.5-7B-Instruct"):
        assert recommended_judge(name) == DEFAULT_JUDGE, name
    assert judge_name(default_judge_instance("toy")) == "lexicon"
    toy = load_model(str(TOY_MODEL_DIR))  # named by its folder, as a run's summary records it
    result = evaluate_methods(
        toy, load_sev(limit=1), {}, EvalConfig(methods=("neutral",), limit=1, max_new_tokens=4), progress=False
    )
    assert result["judge"] == "lexicon"


def test_a_run_records_which_model_its_judge_reads_through():
    """The shipped learned judge reads replies through SmolLM2: judging SmolLM2's own replies warns and is
    recorded; another model, or a judge that reads no model's states, is not flagged."""
    import warnings

    from circuits.core.resources import data_dir
    from circuits.judges.base import ThresholdMatch, judge_subject, make_judge
    from circuits.judges.learned import LearnedJudge

    learned = LearnedJudge(encoder=object())  # the shipped head; its encoder is not needed here
    with pytest.warns(UserWarning, match="the model being steered"):
        assert judge_subject(learned, "smollm2-135m") == {"reads_through": "smollm2-135m", "is_subject": True}
    with pytest.warns(UserWarning):
        assert judge_subject(ThresholdMatch(learned), "smollm2-135m")["is_subject"]
    assert judge_subject(learned, "qwen2.5-coder-0.5b") == {"reads_through": "smollm2-135m", "is_subject": False}
    assert judge_subject(make_judge("lexicon"), "smollm2-135m") == {"reads_through": None, "is_subject": False}
    minilm = LearnedJudge(data_dir("judge_head_minilm"), encoder=object(), name="learned-minilm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: MiniLM is not the model under study
        assert judge_subject(minilm, "smollm2-135m") == {"reads_through": "all-MiniLM-L6-v2", "is_subject": False}
