"""Every bad LLM answer is rejected with a counted reason: parsing, filtering, the run."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from synalign.backends.llm.base import LLM, Completion, OnResult, Request
from synalign.config import build_config
from synalign.errors import SynAlignError
from synalign.io import read_jsonl
from synalign.lar.filters import REASONS, LanguageProfile, SampleFilter, repetition, words_of
from synalign.lar.generator import Cluster, LatentAttributeGenerator
from synalign.lar.prompts import ChatPrompts, CompletionPrompts, ParsedSample, TaskSpec
from synalign.pipeline.runner import Pipeline
from synalign.pipeline.stages import no_sample_message

TASK = TaskSpec("movie review", {"fresh": "positive", "rotten": "negative"})
FOREIGN = json.loads((Path(__file__).parent / "data" / "foreign_sentences.json").read_text())

ENGLISH = [
    "A warm and funny film about two friends on a long road trip across the country.",
    "The cast is excellent and the script gives each of them something real to do.",
    "It is a slow film, but the final hour is one of the best of the year.",
    "The director keeps the story moving and never lets the jokes get in the way.",
    "A clever thriller that is as smart about its characters as it is about its plot.",
    "The songs are lovely and the young lead is a real find for the studio.",
    "It looks great, and the action scenes are some of the best in years.",
    "There is a lot of heart in this small film about a family in trouble.",
    "The plot makes no sense and the dialogue is flat from the first scene to the last.",
    "A tired sequel that offers nothing new and wastes a good cast on bad jokes.",
    "The film is too long by an hour and the ending is a mess.",
    "It is hard to care about any of these people when the story is this thin.",
    "An ugly and loud film that confuses noise with excitement.",
    "The lead tries hard, but the script gives him nothing to work with.",
    "A dull drama that has all the life of a long meeting at the office.",
    "The jokes fall flat and the plot is the same one we have seen a hundred times.",
]


class ScriptedLLM:
    """Answers each request with `answer(request, position)`: fixed strings, no model."""

    backend = "scripted"
    model = "fixed"
    has_chat_template = False

    def __init__(self, answer: Callable[[Request, int], Completion | str]) -> None:
        self.answer = answer

    def stream(
        self, requests: Sequence[Request], on_result: OnResult | None = None
    ) -> Iterator[tuple[int, Completion]]:
        for pos, request in enumerate(requests):
            got = self.answer(request, pos)
            completion = Completion(got) if isinstance(got, str) else got
            if on_result:
                on_result(pos, completion)
            yield pos, completion


class HashEmbedder:
    """Deterministic unit vectors from a text's hash: enough for the explore stage."""

    name = "hash"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in texts]
        rows = [np.random.default_rng(seed).normal(size=8) for seed in seeds]
        X = np.array(rows, dtype=np.float32).reshape(len(texts), 8)
        return X / np.linalg.norm(X, axis=1, keepdims=True).clip(1e-9)


def test_scripted_llm_is_an_llm() -> None:
    assert isinstance(ScriptedLLM(lambda r, p: ""), LLM)


# ----- parsing ------------------------------------------------------------------------


def test_chat_parse_json_array_and_objects() -> None:
    fam = ChatPrompts()
    got = fam.parse_output(
        '```json\n[{"text": "A bold film.", "label": "positive"},'
        ' {"text": "Dull and slow.", "label": "Negative"}, {"label": "positive"},'
        ' {"review": "Only one text field.", "sentiment": "positive"}, ["nested"], true, "Plain."]'
        "\n```",
        labels={"fresh", "positive"},
    )
    assert got == [
        ParsedSample("A bold film."),
        ParsedSample("Dull and slow.", problem="wrong_label"),
        ParsedSample('{"label": "positive"}', problem="unparseable"),
        ParsedSample("Only one text field."),
        ParsedSample('["nested"]', problem="unparseable"),
        ParsedSample("true", problem="unparseable"),
        ParsedSample("Plain."),
    ]
    # a single object instead of an array
    assert fam.parse_output('{"text": "Lovely.", "label": "fresh"}', labels={"fresh"}) == [
        ParsedSample("Lovely.")
    ]
    # without labels to check against, a label is not judged
    assert fam.parse_samples('[{"text": "x y z", "label": "other"}]') == ["x y z"]


def test_chat_parse_cut_off_answer_keeps_complete_items() -> None:
    fam = ChatPrompts()
    raw = '["One whole sample here.", "Two whole samples here.", "Three is cut o'
    assert fam.parse_output(raw, "length") == [
        ParsedSample("One whole sample here."),
        ParsedSample("Two whole samples here."),
        ParsedSample("Three is cut o", problem="truncated"),
    ]
    # cut between two items: nothing partial
    assert fam.parse_output('["One whole sample here.", ', "length") == [
        ParsedSample("One whole sample here.")
    ]


def test_chat_parse_malformed_and_plain_answers() -> None:
    fam = ChatPrompts()
    # an unescaped quote breaks JSON: the elements are recovered from the line
    assert fam.parse_samples('["He called it "bold" and fresh", "Second one here"]') == [
        'He called it "bold" and fresh',
        "Second one here",
    ]
    # a pretty-printed array broken the same way: one element per line
    raw = '[\n  "Said "wow" twice",\n  "A calm second sample"\n]'
    assert fam.parse_samples(raw) == ['Said "wow" twice', "A calm second sample"]
    # headings, fences and bullets are scaffolding, not samples
    raw = 'Here are 2 new movie reviews:\n```\n- "First sample text."\n2) Second sample text\n```'
    assert fam.parse_samples(raw) == ["First sample text.", "Second sample text"]
    assert fam.parse_output("") == [] and fam.parse_output("```\n[]\n```") == []
    # a bracket that opens no JSON is just text
    assert fam.parse_samples("A fine [sic] film.") == ["A fine [sic] film."]


def test_completion_parse_marks_cut_off_sample() -> None:
    fam = CompletionPrompts()
    assert fam.parse_output(" A long rambling sample", "length") == [
        ParsedSample("A long rambling sample", truncated=True)
    ]
    # the stop newline came: complete, whatever the finish reason says
    assert fam.parse_output("Done.\nMovie review", "length") == [ParsedSample("Done.")]
    assert fam.parse_output("") == [ParsedSample("")]


# ----- the filter ---------------------------------------------------------------------


def test_new_reasons_are_listed() -> None:
    for why in ("unparseable", "missing", "wrong_label", "truncated"):
        assert why in REASONS
    assert {"repetitive", "wrong_language"} <= set(REASONS)
    assert len(set(REASONS)) == len(REASONS)


def test_prompt_echo_catches_completion_tag_line() -> None:
    f = SampleFilter().fit(ENGLISH)
    markers = CompletionPrompts().echo_markers(TASK, ["fresh", "rotten"])
    assert "Movie review (positive):" in markers
    for text in (
        "A lovely film. Movie review (positive): another lovely film here",
        "movie review (negative): the worst film of the year by far",
        "Movie reviews labelled positive, sharing these attributes: warm",
    ):
        assert f.reason(text, markers=markers) == "prompt_echo", text
    assert f.reason("A lovely film with a (positive) message for all.", markers=markers) is None
    chat = ChatPrompts().echo_markers(TASK, ["fresh"])
    assert f.reason('Write 3 new movie reviews labelled "positive" now', markers=chat) == (
        "prompt_echo"
    )
    assert f.reason("<example>A lovely film with heart.</example>") == "prompt_echo"


def test_repetitive() -> None:
    f = SampleFilter().fit(ENGLISH)
    for text in (
        "so good so good so good so good so good so good",
        "The film is great. The film is great. The film is great. The film is great.",
        "I loved it, I loved it, I loved it, I loved it, I loved it and more",
        "What a film, hahahahahahahahahahahahahahaha, really fun",
        "A really fun film!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    ):
        assert f.reason(text) == "repetitive", text
    assert repetition(["a", "b", "c", "a", "b", "c"]) == (4, 1)
    # real texts of the fixture are not loops, nor is a joke of a few letters
    assert all(not f.is_repetitive(t, words_of(t)) for t in ENGLISH)
    assert f.reason("You see the movie and you think, zzzzzzzzz.") is None


def test_truncated_unless_a_more_telling_reason() -> None:
    f = SampleFilter().fit(ENGLISH)
    assert f.reason("A warm and moving film that never quite", truncated=True) == "truncated"
    loop = "the film the film the film the film the film the film"
    assert f.reason(loop, truncated=True) == "repetitive"
    assert f.reason("tiny", truncated=True) == "too_short"


def test_wrong_language_on_fixture() -> None:
    f = SampleFilter().fit(ENGLISH)
    assert f.language_ is not None and f.language_.scripts_ == {"LATIN"}
    caught = {
        lang: sum(f.reason(s) == "wrong_language" for s in ss) for lang, ss in FOREIGN.items()
    }
    assert caught["ru"] == caught["zh"] == 12  # script cue
    assert min(caught["fr"], caught["de"], caught["es"]) >= 10, caught  # common-word cue
    # English of the same kind, unseen by the profile, passes
    english = [
        "A charming little film with a great cast and a lot of heart.",
        "The story is thin and the jokes are old, but the lead is good.",
        "Wildly overlong, noisy and empty, despite a few striking images.",
    ]
    assert [f.reason(t) for t in english] == [None, None, None]
    # a few foreign words or a foreign name in an English text are fine
    assert f.reason("The film opens in Moscow with the words «Доброе утро» on a sign.") is None
    # language check off
    g = SampleFilter(language=False).fit(ENGLISH)
    assert g.reason(FOREIGN["ru"][0]) is None


def test_language_profile_of_other_scripts() -> None:
    ru = LanguageProfile().fit(FOREIGN["ru"])
    assert ru.scripts_ == {"CYRILLIC"}
    assert ru.foreign(ENGLISH[0], words_of(ENGLISH[0]))
    assert not ru.foreign("Фильм очень хороший, советую всем.", words_of("Фильм очень хороший"))
    zh = LanguageProfile().fit(FOREIGN["zh"])
    assert zh.foreign(FOREIGN["ru"][0], words_of(FOREIGN["ru"][0]))
    assert not zh.foreign("这部电影很好看。", words_of("这部电影很好看。"))


@pytest.mark.parametrize("corpus", ["rotten-tomatoes", "bbc-news"])
def test_language_and_repetition_spare_held_out_real_texts(corpus: str) -> None:
    """Calibration, few-shot as in a run: fit on 16 or 32 training texts per label, score
    every held-out text. (The Rotten Tomatoes test split itself holds some Spanish and
    Portuguese reviews; they count as false rejections here.)"""
    from synalign.io.corpora import draw_shots, load_split

    train, test = load_split(corpus, "train"), load_split(corpus, "test")
    caught: Counter[str] = Counter()
    fits = [(16, 0), (16, 1), (32, 0), (32, 1)]
    for shots, seed in fits:
        f = SampleFilter().fit(r.text for r in draw_shots(train, shots, seed)[0])
        reasons = Counter()
        for r in test:
            f.seen_ = set()
            reasons[f.reason(r.text)] += 1
        assert reasons["wrong_language"] <= 0.01 * len(test), (shots, seed, reasons)
        assert reasons["repetitive"] <= 0.001 * len(test), (shots, seed, reasons)
        for lang, sentences in FOREIGN.items():
            caught[lang] += sum(f.reason(t) == "wrong_language" for t in sentences)
    n = len(fits) * 12
    assert caught["ru"] == caught["zh"] == n
    assert min(caught[lang] for lang in ("fr", "de", "es")) >= 0.7 * n, caught


# ----- the generator: every asked-for sample is accepted or rejected with a reason -----


def _cluster(index: int, label: str = "fresh") -> Cluster:
    return Cluster(index, label, (f"d{index}",), (ENGLISH[index],))


def test_chat_shortfalls_are_counted() -> None:
    answers = [
        Completion(
            '["A quiet and tender film about loss and love.", "Sharp writing and a great ca',
            finish_reason="length",
        ),
        Completion(""),
        Completion("Here are the reviews:\n```\n```"),
        Completion(
            '[{"text": "A bold and moving film about a family.", "label": "negative"},'
            ' {"text": "A smart and lively comedy for the whole family.", "label": "positive"}]'
        ),
        Completion('["A bright and witty film that never slows down for a moment."]'),
    ]
    llm = ScriptedLLM(lambda r, pos: answers[pos])
    gen = LatentAttributeGenerator(
        llm, ChatPrompts(), TASK, samples_per_cluster=3, sample_filter=SampleFilter().fit(ENGLISH)
    )
    clusters = [_cluster(i) for i in range(5)]
    accepted, rejected = gen.generate(clusters, [])
    assert len(accepted) + len(rejected) == 15
    rows = sorted(accepted + rejected, key=lambda r: r["id"])
    reasons = {
        c.index: [r.get("reason") for r in rows if r["cluster"] == c.index] for c in clusters
    }
    assert reasons[0] == [None, "truncated", "truncated"]
    assert reasons[1] == ["empty"] * 3
    assert reasons[2] == ["unparseable"] * 3
    assert reasons[3] == ["wrong_label", None, "missing"]
    assert reasons[4] == [None, "missing", "missing"]
    shortfall = [r for r in rejected if r["reason"] == "unparseable"]
    assert all(r["text"] == "" and r["raw"].startswith("Here are") for r in shortfall)
    assert gen.counts_ == Counter(
        accepted=3, truncated=2, empty=3, unparseable=3, wrong_label=1, missing=3
    )


def test_chat_call_has_room_for_all_samples() -> None:
    seen: list[Request] = []

    def answer(request: Request, pos: int) -> str:
        seen.append(request)
        return "[]"

    gen = LatentAttributeGenerator(ScriptedLLM(answer), ChatPrompts(), TASK, samples_per_cluster=4)
    gen.sample_filter.fit(ENGLISH)
    gen.generate([_cluster(0)], [])
    assert seen[0].params.max_tokens == gen.sampling.max_tokens * 4 + 16


def test_completion_truncation_and_echo_are_counted() -> None:
    answers = [
        Completion("A warm and clever film that", finish_reason="length"),
        Completion("A quiet triumph. Movie review (negative): a dull film"),
        Completion("Un film magnifique, porté par des acteurs justes et une mise en scène."),
        Completion("A brave and beautiful film that rewards patience."),
    ]
    gen = LatentAttributeGenerator(
        ScriptedLLM(lambda r, pos: answers[pos]),
        CompletionPrompts(),
        TASK,
        samples_per_cluster=4,
        sample_filter=SampleFilter().fit(ENGLISH),
    )
    accepted, rejected = gen.generate([_cluster(0)], [])
    assert [r["reason"] for r in rejected] == ["truncated", "prompt_echo", "wrong_language"]
    assert [a["text"] for a in accepted] == [answers[3].text]


# ----- the run: counts in state.json, and a clear error when a label gets nothing -------


def _run_config(tmp_path: Path):
    rows = [{"text": t, "label": "pos" if i < 8 else "neg"} for i, t in enumerate(ENGLISH)]
    data = tmp_path / "real.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return build_config(
        {
            "name": "scripted",
            "runs_dir": str(tmp_path / "runs"),
            "seed": 3,
            "data": {"path": str(data), "item_name": "movie review"},
            "explore": {"method": "random", "cluster_size": 2},
            "generate": {"samples_per_label": 4, "samples_per_cluster": 2},
            "llm": {"prompt_family": "completion"},
        }
    )


GOOD = [  # unlike any real text above, so never a near copy
    "Three sisters drive home for a funeral and find out who they are on the way.",
    "Every one of these actors makes the most of a sharp and generous script.",
    "Patient viewers get a final scene of rare beauty and a lot of quiet wit.",
    "This little thriller knows its people as well as its twists, and it shows.",
]


def _label_of(request: Request) -> str:
    """'attributes' for an attribute request, else the label a sample is asked for."""
    text = request.prompt.text
    assert text is not None
    if text.endswith("tone:"):
        return "attributes"
    return "pos" if text.rstrip().endswith("(pos):") else "neg"


ATTRIBUTES = Completion(" warm; style: short review; topic: films")


def test_run_counts_every_reason(tmp_path: Path) -> None:
    n = Counter[str]()

    def answer(request: Request, pos: int) -> Completion:
        label = _label_of(request)
        if label == "attributes":
            return ATTRIBUTES
        n[label] += 1
        if label == "pos":
            return Completion(GOOD[n[label] - 1])
        return [
            Completion("Фильм скучный и слишком длинный, я ушёл через час."),
            Completion("bad bad bad bad bad bad bad bad bad bad bad bad"),
            Completion("The plot is thin and the jokes are", finish_reason="length"),
            Completion("The plot is thin but the cast is good and the end is fun."),
        ][n[label] - 1]

    config = _run_config(tmp_path)
    Pipeline(config, llm=ScriptedLLM(answer), embedder=HashEmbedder()).run(until="generate")
    state = json.loads((config.run_dir / "state.json").read_text())["stages"]["generate"]
    assert state["generated"] == 8 and state["accepted"] == 5
    assert state["rejected"] == {"wrong_language": 1, "repetitive": 1, "truncated": 1}
    rejected = read_jsonl(config.run_dir / "rejected.jsonl")
    assert Counter(r["reason"] for r in rejected) == state["rejected"]


def test_nothing_accepted_names_label_and_top_reasons(tmp_path: Path) -> None:
    def answer(request: Request, pos: int) -> Completion:
        if _label_of(request) == "attributes":
            return ATTRIBUTES
        if _label_of(request) == "pos":
            return Completion(GOOD[pos % len(GOOD)])
        if pos % 2:
            return Completion("Der Film ist viel zu lang und die Handlung ist leider sehr dünn.")
        return Completion("no no no no no no no no no no no no no no no no")

    config = _run_config(tmp_path)
    pipe = Pipeline(config, llm=ScriptedLLM(answer), embedder=HashEmbedder())
    with pytest.raises(SynAlignError) as err:
        pipe.run(until="generate")
    msg = str(err.value)
    assert "no synthetic sample was accepted for label(s) 'neg' (rejected: " in msg
    assert "wrong_language 2" in msg and "repetitive 2" in msg and "'pos'" not in msg
    assert str(config.run_dir / "rejected.jsonl") in msg


def test_no_sample_message_orders_reasons() -> None:
    rejected = [{"label": "a", "reason": r} for r in ["x", "y", "y", "z", "z", "z", "w"]]
    msg = no_sample_message(["a", "b"], rejected, Path("run/rejected.jsonl"))
    assert "'a' (rejected: z 3, y 2, x 1); 'b' (rejected: no sample was generated)" in msg
