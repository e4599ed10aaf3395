"""The retrieval ablation's bookkeeping: means and sd over seeds, intervals over queries of the
seed-averaged APs, paired comparisons, the ratios the goals name, the variants' definitions."""

from __future__ import annotations

import pytest

from training.bench_retrieval import (
    FULL,
    VARIANTS,
    comparisons,
    markdown,
    parse_variants,
    ratios,
    summarise_runs,
    summary_rows,
)


def _block(m: float, tail: float, n: int = 4) -> dict:
    row = lambda x: {"mAP": x, "recall@10": x / 2, "hit@10": 1.0, "mrr@10": x, "n": n}  # noqa: E731
    return {"queries": n, "skipped": 0, "overall": row(m), "head": row(0.0), "medium": row(0.0), "tail": row(tail)}


def _run(seed: int, image: float, per_query: dict[str, float], text: float = 0.5) -> dict:
    val = {mode: {"class": _block(v, v / 2), "patent": _block(0.0, 0.0, 0)}
           for mode, v in (("image", image), ("pixels", image / 2), ("image+text", text + 0.1), ("text", text))}
    val["per_query"] = {mode: {"class": per_query, "patent": {}} for mode in ("image", "pixels", "image+text", "text")}
    return {"seed": seed, "train_s": 10.0 * (seed + 1), "val": val}


def test_seed_means_spread_and_query_intervals():
    runs = [_run(0, 0.4, {"q1": 0.2, "q2": 0.6, "q3": 0.4, "q4": 0.4}),
            _run(1, 0.6, {"q1": 0.4, "q2": 0.8, "q3": 0.6, "q4": 0.6})]
    s = summarise_runs(runs, resamples=500)
    fig = s["figures"]["val/image/class"]
    assert fig["mAP"] == pytest.approx(0.5) and fig["mAP_sd"] == pytest.approx(0.1)
    assert fig["tail_mAP"] == pytest.approx(0.25) and fig["queries"] == 4
    # the interval is over queries of the seed-averaged APs (0.3, 0.7, 0.5, 0.5)
    assert s["per_query"]["val/image/class"] == pytest.approx({"q1": 0.3, "q2": 0.7, "q3": 0.5, "q4": 0.5})
    lo, hi = fig["mAP_ci"]
    assert 0.3 <= lo <= 0.5 <= hi <= 0.7
    assert s["train_s"] == pytest.approx(15.0) and s["seeds"] == [0, 1]
    assert "holdout/image/patent" not in s["figures"]  # no held-out gallery in these runs


def test_comparisons_pair_the_same_queries_and_the_ratios_follow():
    a = summarise_runs([_run(0, 0.15, {"q1": 0.1, "q2": 0.2})], resamples=200)
    d = summarise_runs([_run(0, 0.30, {"q1": 0.25, "q2": 0.35}, text=0.7)], resamples=200)
    b = summarise_runs([_run(0, 0.20, {"q1": 0.15, "q2": 0.25})], resamples=200)
    results = {"a_untrained": a, "b_image_class": b, "d_full": d}
    for name, v in results.items():
        v.update(label=name, model="m", descriptions=None)
    comp = {c["comparison"]: c for c in comparisons(results, resamples=200)}
    first = comp["default image vs untrained"]
    assert first["ratio"] == pytest.approx(2.0) and first["diff_diff"] == pytest.approx(0.15)
    assert first["diff_lo"] > 0 and first["diff_p_better"] == 1.0  # better on every query
    assert comp["image+text vs title-only MiniLM"]["ratio"] == pytest.approx(0.8 / 0.5)
    assert "LLM vs templated descriptions, image" not in comp  # that variant did not run
    q = ratios({"variants": results})
    assert q["d_over_b"] == pytest.approx(1.5) and q["d_over_a"] == pytest.approx(2.0)
    r = {"config": {"corpus": "c", "stratify": "uspc-main", "seed": 0, "holdout": None, "model": "m", "epochs": 1,
                    "batch_size": 8, "feature_views": 2, "seeds": 1,
                    "weights": {"image": 1, "instance": 1, "text": 2, "classes": 2}},
         "split": {"train_patents": 3, "train_drawings": 3, "train_classes": 2, "test_patents": 2, "test_drawings": 2,
                   "test_classes": 1}, "variants": results, "comparisons": list(comp.values())}
    md = markdown(r)
    assert "2.00x" in md and "| a_untrained |" in md
    rows = summary_rows(r)
    assert [x["variant"] for x in rows] == ["a_untrained", "b_image_class", "d_full"]
    assert rows[2]["image: class mAP (sd)"] == "0.300 ± 0.000" and rows[2]["image, drawings only"] == "0.150 ± 0.000"


def test_the_variants_differ_only_where_they_say():
    from dataclasses import asdict

    full = asdict(FULL)
    for name, part in (("d_no_class_balanced", {"class_balanced_beta": None}),
                       ("d_no_balanced_la", {"class_level": "supcon", "logit_adjusted": False}),
                       ("d_no_uncertainty", {"combine": "sum"}), ("d_no_preserve", {"preserve": False})):
        v = asdict(VARIANTS[name].loss)
        assert {k for k in full if full[k] != v[k]} == set(part), name
    assert VARIANTS["d_templated"].loss == FULL and VARIANTS["d_templated"].descriptions == "templated"
    assert VARIANTS["d_titles"].descriptions == "titles" and VARIANTS["a_untrained"].loss is None
    b, c = VARIANTS["b_image_class"].loss, VARIANTS["c_image_text"].loss
    assert not b.image_text and not b.text_class and c.image_text and c.text_class
    assert not b.logit_adjusted and b.class_level == "supcon" and b.preserve and c.preserve
    with pytest.raises(ValueError, match="unknown variant"):
        parse_variants(["d_full", "e_magic"])
