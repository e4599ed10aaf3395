"""Figure descriptions -> figure numbers and the normalised view vocabulary."""

from __future__ import annotations

import pytest

from priorsight.corpus.figures import normalise_view, parse_figure_descriptions, parse_figure_sentence


@pytest.mark.parametrize("sentence,label,view", [
    ("FIG. 3 is a top plan view thereof;", "FIG. 3", "top"),
    ("FIG. 1 is a front perspective view of a shoe showing my new design;", "FIG. 1", "perspective"),
    ("FIG. 2 is a side view thereof;", "FIG. 2", "left"),
    ("FIG. 3 is an opposite side view thereof;", "FIG. 3", "right"),
    ("FIG. 5 is a back side view thereof;", "FIG. 5", "rear"),
    ("FIG. 3 is a bottom thereof;", "FIG. 3", "bottom"),
    ("FIG. 8 provides a bottom plan view of the assembly", "FIG. 8", "bottom"),
    ("FIG. 2 is a front elevational of the game housing of FIG. 1;", "FIG. 2", "front"),
    ("FIG. 3 is a right elevational side view of the dispenser bottle of FIG. 1", "FIG. 3", "right"),
    ("FIG. 4 a perspective view thereof.", "FIG. 4", "perspective"),
    ("The FIGURE is a front view of a display screen", "FIGURE", "front"),
    ("1.3 : Back", "1.3", "rear"),
    ("1.8 is an enlarged partial perspective view; and", "1.8", "perspective"),
    ("FIG. 7 is a cross-sectional view taken along line 7-7 of FIG. 1", "FIG. 7", "other"),
    ("FIG. 6A is a rear view thereof", "FIG. 6A", "rear"),
])
def test_parse_figure_sentence(sentence, label, view):
    fig = parse_figure_sentence(sentence, 1)
    assert fig is not None
    assert (fig.label, fig.view) == (label, view)


def test_text_that_names_no_view_is_flagged():
    fig = parse_figure_sentence("FIG. 4 shows the design in use.", 4)
    assert fig.view == "other" and fig.named_view is False
    assert normalise_view("isometric")[0] == "perspective"


def test_parse_description_section_skips_notes_and_duplicates():
    paras = [
        "FIG. 1 is a perspective view of a spoon;",
        "FIG. 2 is a top view thereof;",
        "The broken lines shown in FIGS. 1-2 represent portions that form no part of the claimed design.",
        "FIGS. 1-2 show the spoon.",
        "Fig. 2 is a top view thereof (repeated).",
    ]
    figs = parse_figure_descriptions(paras)
    assert [(f.label, f.number, f.view) for f in figs] == [("FIG. 1", 1, "perspective"), ("FIG. 2", 2, "top")]
