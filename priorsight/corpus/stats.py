"""Corpus statistics: drawings, patents, per-class counts and the head / medium / tail split."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from priorsight.classes import ClassScheme, LevelChoice, SchemeChoice, labelled_counts, resolve_scheme
from priorsight.manifest import FAILURES_FILE, read_manifest, read_table
from priorsight.storage import NotFound, Storage, join
from training.metrics import BUCKETS, class_buckets

NO_CLASS = "(none)"


@dataclass
class CorpusStats:
    drawings: int
    patents: int
    class_counts: dict[str, int]
    bucket_of_class: dict[str, str]
    views: dict[str, int]
    sources: dict[str, int]
    failures: dict[str, int] = field(default_factory=dict)  # severity -> count
    scheme: ClassScheme = field(default_factory=ClassScheme)  # what "class" means in class_counts
    labelled: dict[str, int] = field(default_factory=dict)  # drawings with a code of each scheme

    def bucket_summary(self) -> list[dict]:
        rows = []
        for b in BUCKETS:
            classes = [c for c, bb in self.bucket_of_class.items() if bb == b]
            n = sum(self.class_counts[c] for c in classes)
            rows.append({"bucket": b, "classes": len(classes), "drawings": n,
                         "share": n / self.drawings if self.drawings else 0.0})
        return rows

    def to_dict(self) -> dict:
        return {"drawings": self.drawings, "patents": self.patents, "class_scheme": self.scheme.name,
                "labelled": self.labelled, "classes": len([c for c in self.class_counts if c != NO_CLASS]),
                "class_counts": self.class_counts, "bucket_of_class": self.bucket_of_class,
                "buckets": self.bucket_summary(), "views": self.views, "sources": self.sources,
                "failures": self.failures}


def corpus_stats(corpus: str, storage: Storage | None = None, head_share: float = 1 / 3,
                 tail_share: float = 1 / 3, scheme: SchemeChoice = "auto", level: LevelChoice = "auto") -> CorpusStats:
    """Counts of a corpus, its classes under ``scheme``/``level`` (``auto``: the scheme that labels
    more of its drawings, at its default level: priorsight.classes)."""
    table = read_manifest(corpus, storage)
    rows = table.select([c for c in ("patent_id", "locarno_class", "us_class", "view", "source")
                         if c in table.column_names]).to_pylist()
    labelled = labelled_counts(rows)
    chosen = resolve_scheme(scheme, level, labelled)
    classes = [c or NO_CLASS for c in chosen.labels(rows)]
    class_counts = dict(Counter(classes).most_common())
    known = {c: n for c, n in class_counts.items() if c != NO_CLASS}
    failures: dict[str, int] = {}
    if not str(corpus).endswith(".parquet"):
        try:
            f = read_table(join(corpus, FAILURES_FILE), storage, columns=["severity"])
            failures = dict(Counter(f.column("severity").to_pylist()))
        except NotFound:
            pass
    return CorpusStats(
        drawings=table.num_rows,
        patents=len(set(table.column("patent_id").to_pylist())),
        class_counts=class_counts,
        bucket_of_class=class_buckets(known, head_share, tail_share),
        views=dict(Counter(table.column("view").to_pylist()).most_common()),
        sources=dict(Counter(table.column("source").to_pylist()).most_common()),
        failures=failures,
        scheme=chosen,
        labelled=labelled,
    )


def format_stats(s: CorpusStats, top: int = 40) -> str:
    known = [c for c in s.class_counts if c != NO_CLASS]
    name = {"locarno": "Locarno", "uspc": "US design"}[s.scheme.scheme]
    level = "subclasses" if s.scheme.level == "subclass" else "main classes"
    lines = [f"drawings: {s.drawings}", f"patents:  {s.patents}",
             f"classes:  {len(known)} {name} {level}"
             + (f" in {len({c.split('-')[0] for c in known})} main classes" if s.scheme.level == "subclass" else "")
             + f" ({s.scheme.name}; labelled: " + ", ".join(f"{k} {v}" for k, v in s.labelled.items()) + ")"]
    if s.failures:
        lines.append("failures: " + ", ".join(f"{n} {k}" for k, n in sorted(s.failures.items())))
    lines.append("sources:  " + ", ".join(f"{k} {n}" for k, n in s.sources.items()))
    lines.append("views:    " + ", ".join(f"{k} {n}" for k, n in s.views.items()))
    lines.append("")
    lines.append(f"{'bucket':<8} {'classes':>7} {'drawings':>9} {'share':>6}")
    for r in s.bucket_summary():
        lines.append(f"{r['bucket']:<8} {r['classes']:>7} {r['drawings']:>9} {r['share']:>6.1%}")
    lines.append("")
    lines.append(f"{'class':<8} {'drawings':>9} {'share':>6}  bucket")
    items = list(s.class_counts.items())
    for c, n in items[:top]:
        share = n / s.drawings if s.drawings else 0.0
        bar = "#" * max(1, round(40 * n / items[0][1]))
        lines.append(f"{c:<8} {n:>9} {share:>6.1%}  {s.bucket_of_class.get(c, '-'):<6} {bar}")
    if len(items) > top:
        rest = sum(n for _, n in items[top:])
        lines.append(f"... {len(items) - top} more classes with {rest} drawings")
    return "\n".join(lines)
