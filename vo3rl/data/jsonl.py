"""Row files: JSONL, a JSON list, or parquet, yielding (row id, row dict). Lines that are not JSON
objects are skipped and counted; a missing file is an error of the whole run, raised at once."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from vo3rl.data.schema import SampleError


def iter_rows(path: str, skips=None) -> Iterator[tuple[str, Any]]:
    """Rows of `path` by suffix: .parquet, .json (a list of objects) or JSONL (anything else).
    The row id is "file:line" (JSONL) or "file:#index"."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"row file not found: {path}")
    if path.endswith(".parquet"):
        yield from iter_parquet_rows(path)
    elif path.endswith(".json"):
        with open(path, encoding="utf-8") as fh:
            rows = json.load(fh)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: a .json row file must hold a list of objects")
        name = os.path.basename(path)
        yield from ((f"{name}:#{i}", row) for i, row in enumerate(rows))
    else:
        yield from iter_json_lines(path, skips)


def iter_json_lines(path: str, skips=None) -> Iterator[tuple[str, Any]]:
    """(\"file:line\", object) per non-blank line. Undecodable lines go to `skips` (reason
    bad_json), or raise ValueError when no SkipLog is given."""
    name = os.path.basename(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            line_id = f"{name}:{lineno}"
            try:
                yield line_id, json.loads(line)
            except json.JSONDecodeError as exc:
                if skips is None:
                    raise ValueError(f"{line_id}: not JSON ({exc})") from None
                skips.add(line_id, "bad_json", str(exc))


def iter_parquet_rows(path: str, batch_rows: int = 1024) -> Iterator[tuple[str, dict]]:
    """Rows of a parquet file as dicts, read in batches so big files stream."""
    import pyarrow.parquet as pq

    name = os.path.basename(path)
    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            yield f"{name}:#{index}", row
            index += 1


def convert_rows(path: str, convert, skips) -> Iterator[Any]:
    """convert(row, row_id) for every row of `path`; a row that raises is recorded in `skips`
    (a SkipLog: SampleError by its reason, anything else as bad_row) and the next row follows."""
    for rid, row in iter_rows(path, skips):
        try:
            yield convert(row, rid)
        except SampleError as err:
            skips.add_error(err, fallback_id=rid)
        except Exception as exc:  # noqa: BLE001 - untrusted rows must not stop the run
            skips.add(rid, "bad_row", f"{type(exc).__name__}: {exc}")
