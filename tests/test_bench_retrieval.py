"""The retrieval ablation's bookkeeping: means over training seeds, their spread, the ratios."""

from __future__ import annotations

import pytest

from training.bench_retrieval import mean_of, ratios, summary_rows


def _metrics(class_map: float, tail: float, patent_map: float) -> dict:
    row = lambda m: {"mAP": m, "recall@10": m / 2, "hit@10": 1.0, "mrr@10": m, "n": 7}  # noqa: E731
    return {"class": {"overall": row(class_map), "head": row(0.0), "medium": row(0.0), "tail": row(tail)},
            "patent": {"overall": row(patent_map), "head": row(0.0), "medium": row(0.0), "tail": row(0.0)},
            "drawings": 12, "corpus": "c"}


def test_mean_over_seeds_with_spread_and_ratios():
    runs = [{"seed": 0, "train_s": 10.0, "held_out": _metrics(0.4, 0.2, 0.5)},
            {"seed": 1, "train_s": 20.0, "held_out": _metrics(0.6, 0.4, 0.7)}]
    m = mean_of(runs)
    assert m["train_s"] == pytest.approx(15.0)
    assert m["held_out"]["class"]["overall"]["mAP"] == pytest.approx(0.5)
    assert m["held_out"]["class"]["tail"]["mAP"] == pytest.approx(0.3)
    assert m["held_out"]["class"]["overall"]["n"] == 7 and m["held_out"]["corpus"] == "c"  # counts, names: as run
    assert m["held_out"]["class_mAP_sd"] == pytest.approx(0.1)
    assert "seed" not in m

    b = mean_of([{"seed": 0, "train_s": 1.0, "held_out": _metrics(0.25, 0.1, 0.5)}])
    assert b["held_out"]["class_mAP_sd"] == 0.0
    r = {"variants": {"b_image_only": b, "d_full": m}}
    q = ratios(r)
    assert q["class_mAP_d_over_b"] == pytest.approx(2.0) and q["tail_class_mAP_d_over_b"] == pytest.approx(3.0)
    rows = summary_rows(r)
    assert [(x["variant"], x["class mAP"], x["class mAP sd"]) for x in rows] == \
        [("b_image_only", 0.25, 0.0), ("d_full", pytest.approx(0.5), pytest.approx(0.1))]
