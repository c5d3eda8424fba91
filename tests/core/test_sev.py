"""The SEV loader, items, prompt settings, and the shipped dataset's own rules."""

from __future__ import annotations

import json
import re

import pytest

from circuits.core.emotions import EMOTIONS, UnknownEmotionError
from circuits.core.sev import DEFAULT_TEST, DEFAULT_TRAIN, PromptSettings, SEVFormatError, load_sev

GOOD = {
    "theme": "work/job",
    "scenario": "I sent the draft to my editor.",
    "event": {"positive": "She accepted it.", "neutral": "She said she would read it.", "negative": "She rejected it."},
    "skeleton_id": "work_00",
}

THEMES = [
    "work/job",
    "school/academia",
    "personal relationships",
    "customer service/shopping",
    "public services/administration",
    "health/medical",
    "housing/living facilities",
    "travel/transportation",
]


def _write(tmp_path, lines, name="sev.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return p


@pytest.mark.parametrize("split", [DEFAULT_TRAIN, DEFAULT_TEST])
def test_shipped_splits_follow_the_schema(split):
    ds = load_sev(split)
    assert len(ds) == 160
    assert ds.themes == sorted(THEMES)
    for theme in THEMES:
        assert sum(s.theme == theme for s in ds.scenarios) == 20
    pattern = r"[a-z_]+_test_\d\d" if split == DEFAULT_TEST else r"[a-z_]+_\d\d"
    assert all(re.fullmatch(pattern, s.skeleton_id) for s in ds.scenarios)


def test_splits_are_disjoint():
    a, b = load_sev(DEFAULT_TRAIN), load_sev(DEFAULT_TEST)
    texts_a = {s.scenario for s in a.scenarios} | {e for s in a.scenarios for e in s.events.values()}
    texts_b = {s.scenario for s in b.scenarios} | {e for s in b.scenarios for e in s.events.values()}
    assert not texts_a & texts_b
    assert not {s.skeleton_id for s in a.scenarios} & {s.skeleton_id for s in b.scenarios}


def _emotion_words():
    """Every single-word cue of the judge's lexicon that is a clear emotion word (weight >= 1.5;
    weaker cues such as 'alone' or 'empty' describe situations too) plus base feeling words."""
    from circuits.judges.lexicon import LexiconJudge

    words = {
        "feel",
        "feeling",
        "felt",
        "emotion",
        "emotional",
        "mood",
        "happy",
        "sad",
        "angry",
        "afraid",
        "scared",
        "surprised",
        "disgusted",
        "upset",
        "glad",
        "sorry",
        "love",
        "hate",
    }
    for cues in LexiconJudge().cues.values():
        words |= {c for c, w in cues.items() if " " not in c and w >= 1.5}
    return words


@pytest.mark.parametrize("split", [DEFAULT_TRAIN, DEFAULT_TEST])
def test_no_emotion_words_in_scenarios_or_events(split):
    words = _emotion_words()
    found = []
    for s in load_sev(split).scenarios:
        for text in [s.scenario, *s.events.values()]:
            for w in re.findall(r"[a-z']+", text.lower()):
                if w in words:
                    found.append((s.skeleton_id, w))
    assert not found, found[:20]


def test_items_cover_every_scenario_valence_emotion():
    ds = load_sev(limit=4)
    items = ds.items()
    assert len(items) == 4 * 3 * 6
    assert {(i.skeleton_id, i.valence, i.emotion) for i in items} == {
        (s.skeleton_id, v, e) for s in ds.scenarios for v in ("positive", "neutral", "negative") for e in EMOTIONS
    }
    it = items[0]
    assert it.user_text == f"{it.scenario}\n{it.event}"
    neutral = ds.items(neutral=True)
    assert len(neutral) == 12 and all(i.emotion is None for i in neutral)
    assert len(ds.items(["fear", "anger"])) == 24
    with pytest.raises(UnknownEmotionError, match="joy.*expected one of anger"):
        ds.items(["joy"])


def test_limit_is_deterministic_and_round_robin():
    ds = load_sev()
    sub = ds.subset(8)
    assert len(sub) == 8 and len(sub.themes) == 8
    assert [s.skeleton_id for s in sub.scenarios] == [s.skeleton_id for s in load_sev(limit=8).scenarios]
    assert sub.sha256 != ds.sha256 and sub.sha256 == load_sev(limit=8).sha256
    assert len(ds.subset(10)) == 10 and ds.subset(None) is ds


def test_prompt_settings_defaults_and_roundtrip():
    p = PromptSettings()
    assert p.system_for("anger") == "Always reply in anger.\nKeep the reply to at most two sentences."
    assert p.system_for(None) == "Keep the reply to at most two sentences."
    q = PromptSettings(emotion_system="Answer with {emotion}.")
    assert PromptSettings.from_dict(q.to_dict()) == q and q.system_for("fear") == "Answer with fear."


def test_valid_variants_load(tmp_path):
    extra = dict(GOOD, skeleton_id=7, source="paper")  # extra keys ignored, int id read as str
    p = _write(tmp_path, [GOOD, "", extra | {"skeleton_id": 7}])
    ds = load_sev(p)
    assert [s.skeleton_id for s in ds.scenarios] == ["work_00", "7"]
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([GOOD]))
    assert len(load_sev(arr)) == 1


@pytest.mark.parametrize(
    "line, expected",
    [
        ("{not json", r":1: not JSON"),
        ({k: v for k, v in GOOD.items() if k != "scenario"}, r":1: missing field 'scenario'"),
        (dict(GOOD, event={"positive": "a", "neutral": "b"}), r":1: field 'event.negative': missing"),
        (dict(GOOD, event="happy"), r":1: field 'event': expected an object"),
        (dict(GOOD, theme=""), r":1: field 'theme': expected a non-empty string"),
        (dict(GOOD, event=dict(GOOD["event"], neutral=3)), r":1: field 'event.neutral'"),
        (42, r":1: expected a JSON object"),
    ],
)
def test_malformed_lines_name_file_line_and_field(tmp_path, line, expected):
    p = _write(tmp_path, [line])
    with pytest.raises(SEVFormatError) as err:
        load_sev(p)
    assert str(p) in str(err.value)
    assert re.search(expected, str(err.value)), str(err.value)


def test_all_problems_reported_and_duplicates_caught(tmp_path):
    p = _write(tmp_path, [GOOD, GOOD, dict(GOOD, skeleton_id="x", theme=None)])
    with pytest.raises(SEVFormatError) as err:
        load_sev(p)
    assert len(err.value.errors) == 2
    assert ":2: field 'skeleton_id': duplicate 'work_00'" in err.value.errors[0]
    assert ":3: field 'theme'" in err.value.errors[1]
    assert "\n" not in str(err.value)  # one line: the first problem and how to see the rest
    assert str(err.value).endswith(f"(and 1 more problem(s): `emocircuits sev validate {p}` lists them all)")
    assert "duplicate 'work_00'" in str(err.value)
    assert str(err.value).startswith(f"{p}:2: field")  # the file named once, not "FILE: FILE:2: ..."
    with pytest.raises(SEVFormatError, match="nope.jsonl: no such file"):
        load_sev(tmp_path / "nope.jsonl")


def test_prompt_placements_put_the_instruction_where_asked():
    sev = "I moved to a new city.\nMy first week was quiet."
    paper = PromptSettings()
    assert paper.chat("fear", sev) == ("Always reply in fear.\nKeep the reply to at most two sentences.", sev)
    user = PromptSettings(placement="user", user_instruction="Show {emotion}.")
    assert user.chat("fear", sev) == ("Keep the reply to at most two sentences.", "Show fear.\n\n" + sev)
    after = PromptSettings(placement="user", user_instruction="Show {emotion}.", instruction_position="after")
    assert after.chat("fear", sev)[1] == sev + "\n\nShow fear."
    both = PromptSettings(placement="both", user_instruction="Show {emotion}.")
    assert both.chat("fear", sev) == (paper.system_for("fear"), "Show fear.\n\n" + sev)
    assert both.instructions("fear") == (paper.system_for("fear"), "Show fear.")
    for s in (paper, user, after, both):  # the neutral chat never carries an instruction
        assert s.chat(None, sev) == ("Keep the reply to at most two sentences.", sev)
        assert PromptSettings.from_dict(s.to_dict()) == s
    # a store written before placements existed reads as the paper's placement
    assert PromptSettings.from_dict({"emotion_system": "Be {emotion}.", "neutral_system": "N"}).placement == "system"


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"placement": "assistant"}, r"placement \(--placement\): expected one of"),
        ({"instruction_position": "middle"}, r"instruction_position"),
        ({"user_instruction": "Be angry."}, r"user_instruction: expected a \{emotion\} placeholder"),
        ({"emotion_system": "Reply in {emotion} {tone}."}, r"emotion_system: \{tone\} is not filled in here"),
        ({"emotion_system": "Reply in {emotion"}, r"emotion_system: not a valid template"),
        ({"neutral_system": "Stay {emotion}."}, r"neutral_system: .*may not hold \{emotion\}"),
    ],
)
def test_bad_prompt_settings_name_the_field(kwargs, expected):
    from circuits.core.config import ConfigError

    with pytest.raises(ConfigError, match=expected):
        PromptSettings(**kwargs)


@pytest.mark.parametrize("limit", [0, -2, "3", float("nan"), 2.5, 2.0, True, [1]])
def test_limit_must_be_a_positive_whole_number(limit):
    from circuits.core.artifacts import InputError

    with pytest.raises(InputError, match=r"limit must be a whole number >= 1 .*got"):
        load_sev(limit=limit)
    with pytest.raises(InputError, match="limit must be"):
        load_sev().subset(limit)
    assert len(load_sev(limit=3)) == 3


@pytest.mark.parametrize(
    "text, expected",
    [
        (json.dumps(dict(GOOD, scenario="I saw \ud800 it.")), ":1: field 'scenario': holds a lone surrogate"),
        (json.dumps(dict(GOOD, event=dict(GOOD["event"], neutral="\udfff"))), ":1: field 'event.neutral': holds"),
        ('{"theme": ' + "1" * 5000 + "}", ":1: an integer has more than 4300 digits"),
        ("[" * 100_000, "nested too deep"),
        ('{"a": ' + "[" * 80 + "]" * 80 + "}", ":1: nested more than 64 levels"),
        ("[" + json.dumps(dict(GOOD, theme="\ud83d")) + "]", ": field '[0].theme': holds a lone surrogate"),
    ],
)
def test_surrogates_huge_ints_and_deep_nesting_are_refused_with_the_line(tmp_path, text, expected):
    p = tmp_path / "odd.jsonl"
    p.write_text(text + "\n", encoding="utf-8", errors="surrogatepass")
    with pytest.raises(SEVFormatError) as err:
        load_sev(p)
    assert f"{p}" in str(err.value) and expected in str(err.value), str(err.value)


def test_a_missing_path_or_a_folder_is_a_sev_format_error(tmp_path):
    with pytest.raises(SEVFormatError, match=r"nope\.jsonl: no such file"):
        load_sev(tmp_path / "nope.jsonl")
    with pytest.raises(SEVFormatError, match="expected a file, found a folder"):
        load_sev(tmp_path)


def test_sev_validate_reports_a_surrogate_as_the_loader_does(tmp_path, capsys):
    from circuits import cli

    p = tmp_path / "odd.jsonl"
    p.write_text(json.dumps(dict(GOOD, scenario="\ud800")) + "\n")
    assert cli.main(["sev", "validate", str(p)]) != 0
    err = capsys.readouterr().err
    assert f"{p}:1: field 'scenario': holds a lone surrogate" in err and "Traceback" not in err


def test_the_stance_family_sends_a_stance_instruction_that_never_names_the_emotion():
    from circuits.core.elicitation import named_words, stance_instructions

    sev = "I opened the parcel.\nIt was empty."
    user = PromptSettings(prompt_family="stance", placement="user")
    system, turn = user.chat("anger", sev)
    stance = turn.split("\n\n")[0]
    assert system == user.neutral_system and turn == f"{stance}\n\n{sev}"
    assert stance in stance_instructions("dev")["anger"] and not named_words(turn)
    assert user.chat("anger", sev) == (system, turn)  # one fixed instruction per SEV text
    assert user.instructions("anger", sev) == (stance,)
    assert user.instructions("anger") == stance_instructions("dev")["anger"]  # what any reply may echo
    paper = PromptSettings(prompt_family="stance")
    system = paper.chat("fear", sev)[0]
    assert paper.chat("fear", sev) == (system, sev) and paper.instructions("fear", sev) == (system,)
    assert system.split("\n")[0] in stance_instructions("dev")["fear"] and system.endswith("\n" + paper.neutral_system)
    assert paper.chat(None, sev) == PromptSettings().chat(None, sev)  # the neutral setting is unchanged
    final = PromptSettings(prompt_family="stance", placement="user", implicit_split="final")
    assert final.chat("anger", sev)[1].split("\n\n")[0] in stance_instructions("final")["anger"]
    # the hash spreads the instructions: many SEV texts use most of an emotion's instructions
    used = {user.chat("sadness", f"scenario {k}")[1].split("\n\n")[0] for k in range(200)}
    assert len(used) == len(stance_instructions("dev")["sadness"])


def test_event_and_story_families_send_the_text_alone_and_are_refused_where_sev_is_built():
    from circuits.core.artifacts import InputError

    for family in ("event", "story"):
        p = PromptSettings(prompt_family=family, placement="both")
        assert p.chat("anger", "My neighbour cut down my tree.") == (p.neutral_system, "My neighbour cut down my tree.")
        assert p.instructions("anger") == () and family in p.describe()
        with pytest.raises(InputError, match=f"prompt family '{family}'.*explicit or stance"):
            p.check_sev_shaped("build_store")
    PromptSettings(prompt_family="stance").check_sev_shaped("build_store")
    with pytest.raises(InputError, match="prompt_family"):
        PromptSettings(prompt_family="implicit")
    old = {k: v for k, v in PromptSettings().to_dict().items() if k not in ("prompt_family", "implicit_split")}
    assert PromptSettings.from_dict(old).prompt_family == "explicit"  # stores from before families
