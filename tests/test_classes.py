"""Class schemes: Locarno and US design classes at main-class or subclass level."""

from __future__ import annotations

import pytest

from priorsight.classes import ClassScheme, labelled_counts, resolve_scheme
from priorsight.records import Drawing


def test_labels_at_each_level():
    d = Drawing("d1", "P1", "/x.png", "test", locarno_class="14-04", us_class="D14-486")
    assert ClassScheme("locarno", "subclass").of(d) == "14-04"
    assert ClassScheme("locarno", "main").of(d) == "14"
    assert ClassScheme("uspc", "subclass").of(d) == "D14-486"
    assert ClassScheme("uspc", "main").of(d.to_row()) == "D14"
    assert ClassScheme("uspc", "main").of({"us_class": None}) is None
    assert ClassScheme.parse("uspc-main") == ClassScheme("uspc", "main")
    assert ClassScheme.parse("locarno") == ClassScheme("locarno", "subclass")
    assert ClassScheme("uspc", "main").name == "uspc-main" and ClassScheme("uspc").field == "us_class"


def test_bad_scheme_or_level_is_refused():
    with pytest.raises(ValueError, match="scheme"):
        ClassScheme("cpc", "main")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        ClassScheme("uspc", "group")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scheme"):
        resolve_scheme("ipc")  # type: ignore[arg-type]


def test_auto_picks_the_scheme_that_labels_more_drawings():
    us_only = [{"us_class": "D14-1", "locarno_class": None}] * 3
    both = [{"us_class": "D14-1", "locarno_class": "14-04"}] * 2
    assert labelled_counts(us_only + both) == {"locarno": 2, "uspc": 5}
    assert resolve_scheme("auto", "auto", labelled_counts(us_only)) == ClassScheme("uspc", "main")
    assert resolve_scheme("auto", "auto", labelled_counts(both)) == ClassScheme("locarno", "subclass")  # tie
    assert resolve_scheme("auto", "subclass", labelled_counts(us_only)) == ClassScheme("uspc", "subclass")
    assert resolve_scheme("locarno", "auto", labelled_counts(us_only)) == ClassScheme("locarno", "subclass")
    assert resolve_scheme() == ClassScheme("locarno", "subclass")
