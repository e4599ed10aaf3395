"""Facts, prompts and per-drawing assembly (pure functions, no LLM)."""

from __future__ import annotations

import pytest

from priorsight.describe.config import DescribeConfig
from priorsight.describe.pipeline import assemble_descriptions
from priorsight.describe.prompts import (
    PatentFacts,
    PromptSpec,
    drawing_facts,
    figure_detail,
    full_object_from_title,
    locarno_name,
    object_from_title,
    patent_facts,
    uspc_name,
    uspc_names,
    with_article,
)
from priorsight.describe.truth import TruthFilter
from priorsight.records import USPC_MAIN_CLASSES
from tests.test_describe_fakes import drawing

D7 = "equipment for preparing or serving food or drink"


@pytest.fixture(scope="module")
def spec() -> PromptSpec:
    """The prompt the describe stage uses by default."""
    return PromptSpec.load(DescribeConfig().prompt_version)


@pytest.fixture(scope="module")
def v1() -> PromptSpec:
    return PromptSpec.load("v1")


@pytest.mark.parametrize("title,obj,full", [
    ("Sport spoon", "sport spoon", "sport spoon"),
    ("Display screen or portion thereof with a graphical user interface", "display screen",
     "display screen with a graphical user interface"),
    ("Heat dissipating device for batteries or electric devices", "heat dissipating device",
     "heat dissipating device for batteries or electric devices"),
    ("USB charger", "USB charger", "USB charger"),
])
def test_object_from_title(title, obj, full):
    assert object_from_title(title) == obj
    assert full_object_from_title(title) == full


def test_articles():
    assert with_article("irrigation coupling assembly") == "an irrigation coupling assembly"
    assert with_article("sport spoon") == "a sport spoon"
    assert with_article("LED lamp") == "an LED lamp"
    assert with_article("user interface") == "a user interface"
    assert with_article("game housing and game pieces") == "game housing and game pieces"


def test_figure_detail_keeps_only_what_the_text_adds():
    text = ("FIG. 1 is a perspective view of the soccer sport spoon with the spoon bowl as a soccer ball, "
            "showing my new design; FIG. 2 is a top view thereof;")
    assert figure_detail(text, ["sport spoon"]) == "the soccer sport spoon with the spoon bowl as a soccer ball"
    assert figure_detail("FIG. 2 is a bottom perspective view of the golf club head of FIG. 1 ;", ["golf club head"]) == ""
    assert figure_detail("1.1 : Perspective", ["belt buckle"]) == ""


def test_patent_facts_uses_object_name_or_title_and_class_name():
    d = drawing("P1", 1, "Display screen or portion thereof with a graphical user interface", "front", "front",
                locarno="14-04", caption="The image is a square with a circle.")
    facts = patent_facts([d])
    assert facts.object == "display screen"
    assert facts.full_object == "display screen with a graphical user interface"
    assert facts.locarno_name == locarno_name("14-04") == "screen displays and icons"
    assert facts.caption == "The image is a square with a circle."
    # identical metadata, different patent: same content hash (same LLM descriptions)
    other = patent_facts([drawing("P2", 1, d.title, "top", "top", locarno="14-04", caption=d.caption)])
    assert other.content_hash() == facts.content_hash()
    changed = patent_facts([drawing("P3", 1, d.title, "front", "front", locarno="14-02", caption=d.caption)])
    assert changed.content_hash() != facts.content_hash()


def test_prompt_is_few_shot_with_the_patent_fields_last(spec):
    facts = patent_facts([drawing("P1", 1, "Sport spoon", "top", "top plan", caption="A spoon outline.")])
    p = spec.prompt(facts, "main parts")
    assert p.text.endswith("Object: sport spoon\nTitle: Sport spoon\nClass: table utensils\n"
                           "Caption: A spoon outline.\nFocus: main parts\nDescription:")
    assert p.text.count("Description:") == 1 + len(spec.raw["examples"])
    assert p.messages[0]["role"] == "system" and p.messages[-1]["role"] == "user"
    assert "Object: sport spoon" in p.messages[-1]["content"]
    assert len(spec.fingerprint) == 16


def test_default_prompt_is_v2_and_v1_stays_loadable(spec, v1):
    assert spec.version == "v2" and PromptSpec.load().version == "v2"
    assert v1.version == "v1" and v1.fingerprint != spec.fingerprint
    facts = patent_facts([drawing("P1", 1, "Sport spoon", "top", "top plan")])
    assert "Class: table utensils\n" in v1.prompt(facts, "main parts").text  # Locarno: as before


def test_v2_asks_for_no_synonyms_or_uses(spec):
    assert not any("synonym" in f or "use" in f for f in spec.focus)
    assert "also called" not in spec.prompt(patent_facts([drawing("P1", 1, "Shoe", "top", "top")]), "main parts").text


def test_v2_examples_pass_the_strict_filter(spec):
    """The few-shot examples show the model what the strict filter keeps: only words of their
    own fields and generic ones."""
    for ex in spec.raw["examples"]:
        facts = PatentFacts("X", ex["object"], ex["object"], ex["title"], "", "", ex["details"], ex["caption"],
                            us_class="D99-1", us_class_name=ex["class_name"])
        assert TruthFilter.for_facts(facts, mode="strict").sentence_problems(ex["description"].strip()) == []


def test_uspc_names():
    assert uspc_name("D7-654") == uspc_name("D7") == D7
    assert uspc_name("D14-487") == "recording, communication, or information retrieval equipment"
    assert uspc_name("D1-121") == "edible products"
    assert uspc_name(None) == uspc_name("") == uspc_name("D31-1") == ""  # D31 is not used
    assert set(uspc_names()) == {f"D{n}" for n in USPC_MAIN_CLASSES}
    assert all(name == name.lower() for name in uspc_names().values())


def test_us_class_only_facts_name_the_us_class(spec):
    d = drawing("P7", 2, "Sport spoon", "top", "top plan", locarno=None, us_class="D7-654")
    facts = patent_facts([d])
    assert (facts.locarno, facts.locarno_name, facts.us_class, facts.us_main) == ("", "", "D7-654", "D7")
    assert facts.us_class_name == facts.class_name == D7
    df = drawing_facts(d, facts)
    assert spec.metadata_description(df) == f"A top plan view of a sport spoon, a design in US class D7 ({D7})."
    assert f"\nClass: {D7}\n" in spec.prompt(facts, "main parts").text
    assert any(t.endswith(f"of a sport spoon ({D7}).") for t in spec.templated(df))
    assert PatentFacts.from_json(facts.to_json()) == facts


def test_locarno_class_wins_when_a_drawing_has_both(spec):
    d = drawing("P8", 2, "Sport spoon", "top", "top plan", locarno="07-03", us_class="D7-654")
    facts = patent_facts([d])
    assert facts.class_name == facts.locarno_name == "table utensils"
    assert facts.us_class == "D7-654" and facts.us_class_name == D7  # both codes kept
    assert spec.metadata_description(drawing_facts(d, facts)) == (
        "A top plan view of a sport spoon, a design in Locarno class 07-03 (table utensils).")
    assert "\nClass: table utensils\n" in spec.prompt(facts, "main parts").text
    us_only = patent_facts([drawing("P8", 2, "Sport spoon", "top", "top plan", locarno=None, us_class="D7-654")])
    assert us_only.content_hash() != facts.content_hash()


def test_v1_says_no_class_for_a_us_class_only_drawing(v1):
    d = drawing("P7", 2, "Sport spoon", "top", "top plan", locarno=None, us_class="D7-654")
    facts = patent_facts([d])
    assert v1.metadata_description(drawing_facts(d, facts)) == "A top plan view of a sport spoon."
    assert "Class:" not in v1.prompt(facts, "main parts").text.rsplit("\n\n", 1)[1]


def test_real_sport_spoon_carries_both_classes(uspto_sample, spec):
    from priorsight.corpus.uspto import read_uspto

    drawings = [d for d in read_uspto(uspto_sample) if d.patent_id == "USD0909824"]
    if not drawings:
        pytest.skip("USD0909824 (the sport spoon) is not in the shared sample")
    facts = patent_facts(drawings)
    assert (facts.locarno, facts.us_class, facts.class_name, facts.us_class_name) == (
        "07-03", "D7-654", "table utensils", D7)
    text = spec.metadata_description(drawing_facts(drawings[0], facts))
    assert "a design in Locarno class 07-03 (table utensils)." in text


def test_unknown_prompt_version_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no prompt version 'v999'"):
        PromptSpec.load("v999")


@pytest.mark.parametrize("view,view_text,first,also", [
    ("top", "top plan", "top plan view", "plan view"),
    ("perspective", "front perspective", "front perspective view", "three-dimensional view"),
    ("left", "side", "side view", "lateral view"),  # "side" never becomes "left side"
    ("front", "from", "front view", "frontal view"),  # typo in the patent: fall back to the view
    ("other", "", "view", "drawing"),
])
def test_view_phrases(spec, view, view_text, first, also):
    phrases = spec.view_phrases(view, view_text)
    assert phrases[0] == first and also in phrases
    if view_text == "side":
        assert not any("left" in p for p in phrases)


def test_assemble_entry0_llm_templates_and_k(spec):
    d = drawing("P1", 2, "Sport spoon", "top", "top plan")
    df = drawing_facts(d, patent_facts([d]))
    llm = ["A sport spoon with a long handle and a deep bowl.", "A sporting spoon, a utensil for fans."]
    cfg = DescribeConfig(k=6, n_templates=2)
    texts, n_llm = assemble_descriptions(df, llm, spec, cfg)
    assert texts[0] == spec.metadata_description(df)
    assert texts[0].startswith("A top plan view of a sport spoon, a design in Locarno class 07-03")
    assert n_llm == 2 and len(texts) == 6
    assert texts[1].endswith("of a sport spoon with a long handle and a deep bowl.")  # view put in front
    assert texts[2].endswith("of a sport spoon. A sporting spoon, a utensil for fans.")
    assert all("sport spoon" in t for t in texts)
    # without LLM text: entry 0 + templates, still k
    only, n0 = assemble_descriptions(df, [], spec, cfg)
    assert n0 == 0 and len(only) == 6 and only[0] == texts[0]
    # k = 1: the metadata description alone
    one, n1 = assemble_descriptions(df, llm, spec, DescribeConfig(k=1))
    assert one == [texts[0]] and n1 == 0


def test_assemble_drops_near_duplicate_llm_text(spec):
    d = drawing("P1", 1, "Wheel", "front", "front")
    df = drawing_facts(d, patent_facts([d]))
    llm = ["A wheel with spokes and a rim.", "A wheel with spokes and a rim!", "A wheel with a wide hub."]
    texts, n_llm = assemble_descriptions(df, llm, spec, DescribeConfig(k=10, n_templates=1, dedupe_threshold=0.9))
    assert n_llm == 2
    assert sum("spokes and a rim" in t for t in texts) == 1


def test_llm_budget_follows_k():
    assert DescribeConfig(k=20, n_templates=3).n_llm_wanted == 16
    assert DescribeConfig(k=4, n_templates=3).n_llm_wanted == 2  # templates get at most half
    assert DescribeConfig(k=1).n_llm_wanted == 0
