"""The truth filter (vocabulary based, strict and lists modes) and near-duplicate removal."""

from __future__ import annotations

import pytest

from priorsight.describe.config import DescribeConfig
from priorsight.describe.prompts import PatentFacts, patent_facts
from priorsight.describe.truth import (
    TRUTH_MODES,
    TruthFilter,
    TruthVocabulary,
    content_tokens,
    dedupe,
    default_vocabulary,
    jaccard,
    norm,
)

FACTS = PatentFacts(
    patent_id="P1", object="sport spoon", full_object="sport spoon", title="Sport spoon", locarno="07-03",
    locarno_name="table utensils",
    details="the soccer sport spoon with the spoon bowl as a soccer ball and a steel handle",
    caption="The image is a white outline of a spoon by Acme with two holes.",
)


#: What Gemma 3 270M wrote for the 2021 sample's sport spoon (v1 prompt): invented names and uses.
INVENTED = ("A sports spoon, also called a soccer bowl or a basketball player's football, is designed for use "
            "in sports and outdoor activities.")
#: A faithful sentence: metadata words (sport spoon, bowl, soccer ball, handle) and generic ones.
FAITHFUL = "A sport spoon with a round bowl shaped as a soccer ball and an elongated handle."


@pytest.fixture(params=TRUTH_MODES)
def filt(request) -> TruthFilter:
    """Both modes: what holds for the risky word lists holds for either."""
    return TruthFilter.for_facts(FACTS, mode=request.param)


@pytest.fixture
def lists() -> TruthFilter:
    return TruthFilter.for_facts(FACTS, mode="lists")


@pytest.fixture
def strict() -> TruthFilter:
    return TruthFilter.for_facts(FACTS)


@pytest.mark.parametrize("sentence,reason", [
    ("A sport spoon made of wood.", "material"),
    ("A sport spoon, 15 cm long.", "number"),
    ("A sport spoon with three prongs.", "number"),
    ("A sport spoon in red.", "colour"),
    ("A white sport spoon.", "colour"),  # the caption says white: captions do not ground colours
    ("A sport spoon with two holes.", "number"),  # nor counts
    ("A sport spoon by Spoonco with a handle.", "name"),
    ("A sport spoon™ with a handle.", "trademark"),
    ("The top view shows a sport spoon.", "view"),
    ("Object: sport spoon.", "prompt label"),
    ("Pictures of a sport spoon can be found on websites.", "off topic"),
])
def test_unsupported_sentences_are_flagged(filt, sentence, reason):
    problems = filt.sentence_problems(sentence)
    assert any(reason in p for p in problems), problems


@pytest.mark.parametrize("sentence", [
    "A sport spoon with a steel handle.",  # "steel" is in the figure text: grounded
    "A sport spoon with a bowl shaped like a soccer ball.",
    "A sport spoon, a utensil with a slender handle and a curved bowl.",  # "utensil": the class name
    FAITHFUL,
])
def test_supported_sentences_pass(filt, sentence):
    assert filt.sentence_problems(sentence) == []


@pytest.mark.parametrize("sentence,problem", [
    ("A sport spoon by Acme.", "ungrounded 'Acme'"),  # the caption keeps it from being a brand, no more
    ("A sporting spoon, a utensil with a slender handle and a curved bowl.", "ungrounded 'sporting'"),
])
def test_lists_mode_keeps_what_strict_mode_drops(lists, strict, sentence, problem):
    assert lists.sentence_problems(sentence) == []
    assert problem in strict.sentence_problems(sentence)


def test_strict_mode_drops_the_invented_sport_spoon_sentence(lists, strict):
    assert lists.sentence_problems(INVENTED) == []  # no listed risky word: "lists" lets it through
    problems = strict.sentence_problems(INVENTED)
    assert "synonym 'called'" in problems
    for word in ("basketball", "football", "outdoor", "activities"):
        assert f"ungrounded {word!r}" in problems, problems
    assert not any("sport" in p or "soccer" in p or "bowl" in p for p in problems)  # grounded words pass
    assert strict.clean(f"{INVENTED} {FAITHFUL}").text == FAITHFUL
    assert strict.clean(INVENTED).text is None
    assert lists.clean(INVENTED).text == INVENTED


@pytest.mark.parametrize("sentence,problem", [
    ("A sport spoon, also known as a soccer spoon, with a long handle.", "synonym 'known'"),
    ("A sport spoon for kids at soccer parties.", "ungrounded 'kids'"),
    ("A sport spoon for eating cereal.", "ungrounded 'eating'"),
    ("A soccer spoon in a kitchen drawer.", "ungrounded 'kitchen'"),
    ("A sport spoon with a ball-shaped bowl and a hockey-stick handle.", "ungrounded 'hockey-stick'"),
])
def test_strict_mode_drops_invented_names_uses_and_places(strict, sentence, problem):
    assert problem in strict.sentence_problems(sentence)


@pytest.mark.parametrize("sentence", [
    "A sport spoon with a ball-shaped bowl and a soccer-ball handle.",  # hyphenated: each part counts
    "The sport spoon's handle extends from the rim of its bowl and tapers to a rounded end.",
    "A soccer sport spoon whose bowl is a soccer ball attached to a slender curved handle.",
])
def test_strict_mode_keeps_metadata_and_generic_words(strict, sentence):
    assert strict.sentence_problems(sentence) == []


def test_strict_mode_on_the_real_sport_spoon(uspto_sample):
    from priorsight.corpus.uspto import read_uspto

    drawings = [d for d in read_uspto(uspto_sample) if d.patent_id == "USD0909824"]
    if not drawings:
        pytest.skip("USD0909824 (the sport spoon) is not in the shared sample")
    facts = patent_facts(drawings)
    assert facts.title == "Sport spoon" and facts.locarno == "07-03" and "soccer ball" in facts.details
    strict = TruthFilter.for_facts(facts, mode=DescribeConfig().truth)
    assert strict.clean(INVENTED).text is None
    assert strict.clean(FAITHFUL).text == FAITHFUL
    assert TruthFilter.for_facts(facts, mode="lists").clean(INVENTED).text == INVENTED


def test_us_class_name_grounds_words_when_there_is_no_locarno_class():
    chew = PatentFacts("P2", "pet chew", "pet chew", "Pet chew", "", "", us_class="D1-121",
                       us_class_name="edible products")
    strict = TruthFilter.for_facts(chew)
    assert strict.sentence_problems("An edible pet chew with an elongated body and rounded ends.") == []
    assert "ungrounded 'dog'" in strict.sentence_problems("A pet chew, also called a dog treat, with rounded ends.")


def test_unknown_truth_mode_is_an_error():
    with pytest.raises(ValueError, match="truth mode"):
        TruthFilter.for_facts(FACTS, mode="loose")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DescribeConfig(truth="loose")  # type: ignore[arg-type]
    assert DescribeConfig().truth == "strict"


def test_generic_vocabulary_leaves_out_kinds_uses_people_places_and_materials():
    v = default_vocabulary()
    assert 300 <= len(v.generic) <= 800  # a few hundred words, chosen by hand
    assert {norm(w) for w in ("round", "elongated", "cylindrical", "handle", "rim", "opening", "extends",
                                "attached")} <= v.generic
    assert {"on", "off", "no"} <= v.function_words  # quoted in the YAML (else read as booleans)
    assert all(isinstance(w, str) and w.islower() for w in v.generic | v.function_words)
    never = ["spoon", "bowl", "ball", "cup", "bottle", "lamp", "wheel", "toy", "tool", "utensil", "container",
             "sport", "soccer", "football", "basketball", "game", "player", "person", "user", "kid", "dog",
             "hand", "kitchen", "outdoor", "home", "office", "food", "eating", "drinking", "called", "known",
             "button", "pattern", "logo", "decoration"]
    allowed = v.generic | v.function_words
    assert [w for w in never if w in allowed] == []
    risky = v.materials | v.colours | v.number_words | v.units | v.view_words | v.off_topic | v.synonym_words
    assert allowed & risky == set()


def test_clean_drops_bad_sentences_and_keeps_the_rest(filt):  # both modes
    c = filt.clean(" A sport spoon with a long handle. It is made of stainless steel and wood. It weighs 40 g")
    assert c.text == "A sport spoon with a long handle."
    reasons = dict(c.dropped)
    assert "material 'wood'" in reasons["It is made of stainless steel and wood."]
    assert reasons["It weighs 40 g"] == "unfinished"


@pytest.mark.parametrize("text,reason", [
    ("", "empty"),
    ("A red sport spoon.", "no supported sentence"),
    ("A spoon.", "too short"),
])
def test_clean_rejects(filt, text, reason):
    c = filt.clean(text)
    assert c.text is None and c.reason == reason


def test_clean_rejects_text_that_no_longer_names_the_object(lists, strict):
    text = "A ladle with a long handle and a deep bowl."
    assert lists.clean(text).reason == "does not name the object"
    assert strict.clean(text).reason == "no supported sentence"  # "ladle" is not in the metadata
    assert strict.clean("The handle is long and the bowl is deep.").reason == "does not name the object"


def test_dedupe_by_token_jaccard():
    texts = [
        "A sport spoon with a long handle.",
        "Sport spoons with long handles!",  # same words after normalisation
        "A spoon whose bowl is a soccer ball.",
        "A sport spoon with a long, slender handle.",
    ]
    a, b = content_tokens(texts[0]), content_tokens(texts[3])
    assert jaccard(a, content_tokens(texts[1])) == 1.0
    assert 0 < jaccard(a, b) < 1
    assert dedupe(texts, threshold=0.7) == [texts[0], texts[2]]
    assert dedupe(texts, threshold=0.95) == [texts[0], texts[2], texts[3]]
    assert dedupe(texts[:2], keep=["a sport spoon with a long handle"]) == []


def test_vocabulary_fingerprint_follows_the_word_lists():
    fp = default_vocabulary().fingerprint
    assert len(fp) == 16
    a = TruthVocabulary.from_mapping({"materials": ["wood"]})
    b = TruthVocabulary.from_mapping({"materials": ["wood", "steel"]})
    assert a.fingerprint != b.fingerprint and "steel" in b.materials
