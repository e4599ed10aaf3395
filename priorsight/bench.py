"""Benchmark records: every ``priorsight bench NAME`` writes ``docs/benchmarks/NAME.json`` and
replaces its own section of ``docs/benchmarks.md`` (between markers), leaving the others.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

DOCS_DIR = Path("docs")
MARKDOWN = "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nEach section is written by the command it names "
    "(raw results in `docs/benchmarks/*.json`). Numbers are from the machine named in each "
    "section; re-run the command to refresh it.\n"
)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A GitHub markdown table from a list of dicts (floats to 3 significant decimals)."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(out) + "\n"


def record(name: str, results: dict[str, Any], section_markdown: str, command: str,
           docs_dir: Path | str = DOCS_DIR) -> Path:
    """Write the JSON record and update the ``name`` section of docs/benchmarks.md."""
    docs_dir = Path(docs_dir)
    (docs_dir / "benchmarks").mkdir(parents=True, exist_ok=True)
    when = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    payload = {"name": name, "command": command, "when": when, "machine": machine(), "results": results}
    json_path = docs_dir / "benchmarks" / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")

    md_path = docs_dir / MARKDOWN
    text = md_path.read_text() if md_path.exists() else HEADER
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    m = machine()
    section = (
        f"{begin}\n## {name}\n\nCommand: `{command}` — {when}, {m['cpus']} CPUs, Python {m['python']}.\n\n"
        f"{section_markdown.rstrip()}\n{end}"
    )
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        _, post = rest.split(end, 1)
        text = pre + section + post
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    md_path.write_text(text)
    return json_path
