"""Synthetic design-patent corpus: catalog, designs, renderer, metadata, writers, Ray source."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from priorsight.corpus.figures import parse_figure_descriptions, parse_figure_sentence
from priorsight.corpus.synth.designs import CatalogError, Params, load_catalog, make_design, parse_catalog
from priorsight.corpus.synth.families import FAMILIES
from priorsight.corpus.synth.generate import SynthConfig, generate_corpus, generate_patent, plan_patent
from priorsight.corpus.synth.geometry import DesignBuilder, box, cylinder
from priorsight.corpus.synth.patents import (
    ORTHO_ORDER,
    VIEW_WORDS,
    PatentIdError,
    parse_patent_id,
    patent_id,
    pick_object_type,
)
from priorsight.corpus.synth.render import DrawingStyle, ViewSpec, render_view
from priorsight.manifest import DRAWING_SCHEMA, read_manifest
from priorsight.records import VIEWS, normalise_locarno
from training.metrics import class_buckets

SMALL = dict(image_size=64, supersample=1.0)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


# -- catalog and designs ----------------------------------------------------------------------------

def test_catalog_size_and_classes(catalog):
    assert len(catalog.types) >= 40
    assert len({t.locarno for t in catalog.types}) >= 15
    assert {c.code for c in catalog.classes} == {t.locarno for t in catalog.types}
    for t in catalog.types:
        assert normalise_locarno(t.locarno) == t.locarno
        assert t.family in FAMILIES


def test_look_alike_types_share_families_across_classes(catalog):
    def classes_of(*names):
        return {catalog.type_named(n).locarno for n in names}, {catalog.type_named(n).family for n in names}

    for group in (("cup", "vase", "bottle", "candle holder", "smart speaker"),  # revolved vessels
                  ("stool", "side table", "plant stand"),  # top on legs
                  ("loudspeaker", "router", "external hard drive", "power bank")):  # device boxes
        classes, families = classes_of(*group)
        assert len(classes) >= 3 and len(families) == 1, group


def test_every_yaml_parameter_is_read_by_its_family(catalog):
    # a misspelt parameter in object_types.yaml would silently fall back to the default
    for t in catalog.types:
        used: set[str] = set()
        for seed in range(12):
            p = Params(np.random.default_rng([seed, 11]), t.params)
            FAMILIES[t.family](p, t.name)
            p.i("detail", 0)
            used |= p.used
        assert set(t.params) <= used, (t.name, set(t.params) - used)


def test_designs_vary_within_a_type(catalog):
    t = catalog.type_named("table lamp")
    hulls = [make_design(t, np.random.default_rng([s, 0])).hull() for s in range(6)]
    extents = {tuple(np.round(np.ptp(h, axis=0), 3)) for h in hulls}
    assert len(extents) == 6
    counts = {len(make_design(t, np.random.default_rng([s, 0])).prims) for s in range(12)}
    assert len(counts) > 1  # parts present / absent


@pytest.mark.parametrize("bad, match", [
    ({"classes": [{"code": "07-01"}], "types": [{"name": "x", "locarno": "07-02", "family": "vessel"}]}, "not listed"),
    ({"classes": [{"code": "99-01"}], "types": []}, "Locarno"),
    ({"classes": [{"code": "07-01"}], "types": [{"name": "x", "locarno": "07-01", "family": "nope"}]}, "unknown family"),
    ({"types": []}, "classes"),
])
def test_bad_catalog_is_refused(bad, match):
    with pytest.raises(CatalogError, match=match):
        parse_catalog(bad, tuple(FAMILIES))


# -- renderer ---------------------------------------------------------------------------------------

def _design(*prims):
    b = DesignBuilder("test")
    part = b.part("body")
    b.add(part, *prims)
    return b.build()


def _ink(img: Image.Image) -> np.ndarray:
    return np.asarray(img) < 128


def test_hidden_lines_are_removed():
    style = DrawingStyle(label=False, shading=0, supersample=1.0, margin=0.1)
    front = box((0, 0, 0.5), (1, 0.2, 1))
    hidden = box((0.1, 0.5, 0.4), (0.3, 0.2, 0.3))  # entirely behind the front box
    alone = _ink(render_view(_design(front), ViewSpec("front"), style, 96))
    both = _ink(render_view(_design(front, hidden), ViewSpec("front"), style, 96))
    # the view frame follows the hull, so compare the ink inside the front box only
    assert alone.sum() > 0
    rows, cols = np.flatnonzero(alone.any(1)), np.flatnonzero(alone.any(0))
    inner = (slice(rows[0] + 3, rows[-1] - 2), slice(cols[0] + 3, cols[-1] - 2))
    assert not both[inner].any()
    visible = _ink(render_view(_design(front, box((0.0, -0.3, 0.5), (0.3, 0.2, 0.3))), ViewSpec("front"), style, 96))
    assert visible[inner].any()  # the same box in front is drawn


def test_box_and_cylinder_outlines():
    style = DrawingStyle(label=False, shading=0, supersample=1.5, margin=0.1)
    ink = _ink(render_view(_design(box((0, 0, 0), (1, 1, 1))), ViewSpec("front"), style, 128))
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    assert ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].mean() < 0.2  # an outline, not a filled square
    assert not ink[rows[0] + 5:rows[-1] - 4, cols[0] + 5:cols[-1] - 4].any()
    top = _ink(render_view(_design(cylinder((0, 0, 0), (0, 0, 1), 0.5)), ViewSpec("top"), style, 128))
    ys, xs = np.nonzero(top)
    r = np.hypot(ys - ys.mean(), xs - xs.mean())
    assert r.std() < 0.06 * r.mean()  # ink lies on a circle


def test_render_rejects_bad_input():
    with pytest.raises(ValueError, match="view"):
        render_view(_design(box((0, 0, 0), (1, 1, 1))), ViewSpec("sideways"), DrawingStyle(), 64)
    with pytest.raises(ValueError, match="size"):
        render_view(_design(box((0, 0, 0), (1, 1, 1))), ViewSpec("front"), DrawingStyle(), 8)


# -- patents and metadata ---------------------------------------------------------------------------

def test_generation_is_deterministic_per_seed_and_index(catalog):
    config = SynthConfig(patents=3, seed=7, **SMALL)
    a = generate_patent(config, 2, catalog=catalog)
    b = generate_patent(config, 2, catalog=catalog)
    assert [d.png for d in a] == [d.png for d in b]
    assert [d.drawing for d in a] == [d.drawing for d in b]
    # a patent does not depend on the corpus size or on which patents came before
    bigger = generate_patent(SynthConfig(patents=50, seed=7, **SMALL), 2, catalog=catalog)
    assert [d.png for d in bigger] == [d.png for d in a]
    other = generate_patent(SynthConfig(patents=3, seed=8, **SMALL), 2, catalog=catalog)
    assert other[0].drawing.patent_id != a[0].drawing.patent_id
    assert [d.png for d in other] != [d.png for d in a]


def test_view_counts_and_figure_order(catalog):
    config = SynthConfig(patents=300, seed=1)
    seen_kinds: Counter[str] = Counter()
    for i in range(config.patents):
        plan, _ = plan_patent(config, i, catalog)
        kinds = [f.kind for f in plan.figures]
        standard = [k for k in kinds if k in ("perspective", "perspective2", *ORTHO_ORDER)]
        assert 4 <= len(standard) <= 8
        assert kinds[0] == "perspective"
        assert [f.number for f in plan.figures] == list(range(1, len(kinds) + 1))
        assert len(set(kinds)) == len(kinds)
        seen_kinds.update(kinds)
    assert seen_kinds["perspective2"] > 0 and seen_kinds["exploded"] > 0 and seen_kinds["detail"] > 0


def test_figure_sentences_round_trip_through_the_parser(catalog):
    config = SynthConfig(patents=200, seed=3)
    for i in range(config.patents):
        plan, _ = plan_patent(config, i, catalog)
        for f in plan.figures:
            parsed = parse_figure_sentence(f.description, f.number)
            assert parsed is not None, f.description
            assert parsed.view == f.view, f.description
            assert parsed.label == f"FIG. {f.number}"
            assert f.view in VIEWS
        parsed_all = parse_figure_descriptions([f.description for f in plan.figures])
        assert [p.view for p in parsed_all] == [f.view for f in plan.figures]
    # every way of writing a view maps back to it, whatever the object is called
    for kind, words in VIEW_WORDS.items():
        expected = ("perspective" if kind in ("perspective", "perspective2", "exploded", "extra")
                    else "other" if kind == "detail" else kind)
        for w in words:
            for obj in ("spinning top", "desk lamp"):
                assert parse_figure_sentence(f"FIG. 2 is a {w} view of the {obj} of FIG. 1;", 2).view == expected, w


def test_patent_ids_and_metadata(catalog):
    pid = patent_id(12, 345)
    assert pid.startswith("SYN-D") and parse_patent_id(pid) == (12, 345)
    assert patent_id(1, 12) != patent_id(11, 2)
    with pytest.raises(PatentIdError):
        patent_id(0, 10**9)
    with pytest.raises(PatentIdError):
        parse_patent_id("USD0909824")
    drawings = generate_patent(SynthConfig(patents=1, seed=4, **SMALL), 0, catalog=catalog)
    d = drawings[0].drawing
    assert d.source == "synthetic" and d.title and d.object_name
    assert d.title.lower() == d.object_name
    date = dt.date.fromisoformat(d.grant_date)
    assert date.weekday() == 1 and dt.date(2007, 1, 1) <= date <= dt.date(2024, 12, 31)  # a Tuesday
    assert d.figure_description.startswith("FIG. 1 is a") and d.object_name in d.figure_description
    assert len({x.drawing.drawing_id for x in drawings}) == len(drawings)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SynthConfig(patents=0)
    with pytest.raises(ValueError, match="min_views"):
        SynthConfig(min_views=7, max_views=5)
    with pytest.raises(ValueError):
        SynthConfig(zipf=-1)


# -- long tail --------------------------------------------------------------------------------------

def test_zipf_class_frequencies_are_long_tailed(catalog):
    probs = catalog.class_probabilities(1.0)
    assert np.all(np.diff(probs) < 0) and probs.sum() == pytest.approx(1.0)
    buckets = class_buckets({c.code: float(p) for c, p in zip(catalog.classes, probs)})
    n = Counter(buckets.values())
    assert n["head"] <= 3 and n["tail"] >= len(catalog.classes) / 2  # a few head classes, many tail
    flat = Counter(class_buckets({c.code: 1.0 for c in catalog.classes}).values())
    assert flat["head"] > n["head"]
    # sampled classes follow the law
    rng = np.random.default_rng(0)
    picks = Counter(pick_object_type(rng, catalog, probs).locarno for _ in range(4000))
    top, last = catalog.classes[0].code, catalog.classes[-1].code
    assert picks[top] / 4000 == pytest.approx(probs[0], abs=0.03)
    assert picks[top] > 5 * picks[last]


# -- corpus writers ---------------------------------------------------------------------------------

def test_generate_corpus_writes_manifest_and_pngs(tmp_path, catalog):
    out = tmp_path / "synth"
    summary = generate_corpus(str(out), 3, seed=5, progress=False, **SMALL)
    table = read_manifest(str(out))
    assert table.schema.equals(DRAWING_SCHEMA)
    rows = table.to_pylist()
    assert len(rows) == summary.drawings > 3 * 4 - 1
    assert len({r["patent_id"] for r in rows}) == 3
    for r in rows:
        img = Image.open(r["image_uri"])
        assert img.format == "PNG" and (img.width, img.height) == (r["width"], r["height"])
        assert max(img.size) <= 64
        assert r["source"] == "synthetic" and r["view"] in VIEWS
    assert pq.read_table(out / "failures.parquet").num_rows == 0
    expected = [d.drawing.drawing_id for i in range(3) for d in generate_patent(SynthConfig(patents=3, seed=5, **SMALL), i)]
    assert [r["drawing_id"] for r in rows] == expected


def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from priorsight.cli import app

    runner = CliRunner()
    out = tmp_path / "c"
    res = runner.invoke(app, ["corpus", "synth", "--patents", "2", "--seed", "1", "--out", str(out),
                              "--image-size", "64", "--supersample", "1"])
    assert res.exit_code == 0, res.output
    assert read_manifest(str(out)).num_rows > 0
    bad = runner.invoke(app, ["corpus", "synth", "--patents", "2", "--out", str(tmp_path / "d"), "--image-size", "10"])
    assert bad.exit_code != 0 and "image_size" in bad.output


def test_ray_data_source_matches_local_generation(tmp_path):
    ray = pytest.importorskip("ray")
    from priorsight.corpus.synth.generate import generate_corpus_ray

    config = SynthConfig(patents=3, seed=9, **SMALL)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        # workers write the PNGs, the driver streams rows into the manifest
        summary = generate_corpus_ray(str(tmp_path / "ray"), config, num_cpus=0.5, progress=False)
    finally:
        ray.shutdown()
    local = [d for i in range(3) for d in generate_patent(config, i)]
    rows = read_manifest(str(tmp_path / "ray")).to_pylist()
    assert summary.drawings == len(rows) == len(local)
    assert [r["drawing_id"] for r in rows] == [d.drawing.drawing_id for d in local]
    assert [open(r["image_uri"], "rb").read() for r in rows] == [d.png for d in local]
    assert [r["figure_description"] for r in rows] == [d.drawing.figure_description for d in local]
