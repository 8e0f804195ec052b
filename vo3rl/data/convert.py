"""Converting row files between layouts: any readable format in, seeker / verl / samples out.

The common case is Seeker RL JSONL <-> verl parquet. Video paths are copied as written (no data
root), so a converted file points where the original did. Bad input rows are skipped and counted.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterable

from vo3rl.data.readers import SAMPLE_FORMATS, read_samples
from vo3rl.data.sample_json import sample_to_dict
from vo3rl.data.schema import Sample
from vo3rl.data.seeker import sample_to_seeker_row
from vo3rl.data.skips import SkipLog
from vo3rl.data.verl_rows import sample_to_verl_row

OUTPUT_FORMATS: tuple[str, ...] = ("seeker", "verl", "samples")


@dataclass
class ConvertReport:
    written: int
    skips: SkipLog


def sample_rows(samples: Iterable[Sample], fmt: str) -> Iterable[dict[str, Any]]:
    """Rows of output format `fmt` for `samples`."""
    for index, sample in enumerate(samples):
        if fmt == "seeker":
            yield sample_to_seeker_row(sample)
        elif fmt == "verl":
            yield sample_to_verl_row(sample, index)
        elif fmt == "samples":
            yield sample_to_dict(sample)
        else:
            raise ValueError(f"unknown output format {fmt!r}; known: {', '.join(OUTPUT_FORMATS)}")


def write_rows(path: str, rows: Iterable[dict[str, Any]]) -> int:
    """Rows to `path`: parquet for a .parquet suffix, else JSONL. Returns the count."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(list(rows))
        pq.write_table(table, path)
        return table.num_rows
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def convert_file(src: str, src_fmt: str, dst: str, dst_fmt: str, skips: SkipLog | None = None) -> ConvertReport:
    """Read `src` as `src_fmt` (a readers format), write `dst` as `dst_fmt` (seeker | verl | samples)."""
    if src_fmt not in SAMPLE_FORMATS:
        raise ValueError(f"unknown input format {src_fmt!r}; known: {', '.join(SAMPLE_FORMATS)}")
    if dst_fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {dst_fmt!r}; known: {', '.join(OUTPUT_FORMATS)}")
    skips = skips if skips is not None else SkipLog(stage=f"convert {os.path.basename(src)}")
    written = write_rows(dst, sample_rows(read_samples(src, src_fmt, None, skips), dst_fmt))
    return ConvertReport(written=written, skips=skips)


def seeker_to_verl(src: str, dst: str, skips: SkipLog | None = None) -> ConvertReport:
    """Seeker RL JSONL -> verl parquet (or JSONL when `dst` does not end in .parquet)."""
    return convert_file(src, "seeker", dst, "verl", skips)


def verl_to_seeker(src: str, dst: str, skips: SkipLog | None = None) -> ConvertReport:
    """verl parquet/JSONL -> Seeker RL JSONL."""
    return convert_file(src, "verl", dst, "seeker", skips)
