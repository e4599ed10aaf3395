"""The truth filter (vocabulary based) and near-duplicate removal."""

from __future__ import annotations

import pytest

from priorsight.describe.prompts import PatentFacts
from priorsight.describe.truth import TruthFilter, TruthVocabulary, content_tokens, dedupe, default_vocabulary, jaccard

FACTS = PatentFacts(
    patent_id="P1", object="sport spoon", full_object="sport spoon", title="Sport spoon", locarno="07-03",
    locarno_name="table utensils",
    details="the soccer sport spoon with the spoon bowl as a soccer ball and a steel handle",
    caption="The image is a white outline of a spoon by Acme with two holes.",
)


@pytest.fixture
def filt() -> TruthFilter:
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
    "A sport spoon by Acme.",  # a name the caption uses is not flagged as a brand
    "A sporting spoon, a utensil with a slender handle and a curved bowl.",
])
def test_supported_sentences_pass(filt, sentence):
    assert filt.sentence_problems(sentence) == []


def test_clean_drops_bad_sentences_and_keeps_the_rest(filt):
    c = filt.clean(" A sport spoon with a long handle. It is made of stainless steel and wood. It weighs 40 g")
    assert c.text == "A sport spoon with a long handle."
    reasons = dict(c.dropped)
    assert "material 'wood'" in reasons["It is made of stainless steel and wood."]
    assert reasons["It weighs 40 g"] == "unfinished"


@pytest.mark.parametrize("text,reason", [
    ("", "empty"),
    ("A red sport spoon.", "no supported sentence"),
    ("A ladle with a long handle and a deep bowl.", "does not name the object"),
    ("A spoon.", "too short"),
])
def test_clean_rejects(filt, text, reason):
    c = filt.clean(text)
    assert c.text is None and c.reason == reason


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
