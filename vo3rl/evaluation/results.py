"""A benchmark's results as files a user keeps: `results.json` (the metrics as fractions, with the
model and every setting that shapes the number) and `results.md` (the same as a table, ×100 the way
papers print them)."""
from __future__ import annotations

import json
import math
from pathlib import Path

COUNT_KEYS = ("n", "failed", "skipped_rows", "tts/n")


def _shown(key: str, value) -> str:
    if key in COUNT_KEYS:
        return str(int(value))
    if key.startswith("agent/"):  # per-sample means of counts and seconds, not fractions
        return f"{float(value):.2f}"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{100 * float(value):.1f}"


def results_markdown(benchmark: str, model: str, metrics: dict) -> str:
    """A Markdown page: the benchmark, the model and one row per metric (×100; counts as counts)."""
    rows = [f"| {key} | {_shown(key, value)} |" for key, value in metrics.items() if isinstance(value, (int, float))]
    return "\n".join([f"# {benchmark}", "", f"Model: `{model}`", "", "| metric | value |", "|---|---|", *rows, ""])


def write_results(folder: str | Path, benchmark: str, model: str, metrics: dict, settings: dict) -> Path:
    """`results.json` and `results.md` in `folder` (created); returns the JSON's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps({"benchmark": benchmark, "model": model, "metrics": metrics, "settings": settings},
                               indent=2) + "\n")
    (folder / "results.md").write_text(results_markdown(benchmark, model, metrics))
    return path
