"""A benchmark evaluation that keeps its results as it goes: samples run in chunks, each finished
chunk's episode records are appended to `episodes.jsonl`, and a rerun reads that file back and runs
only the samples it does not hold yet. A sample whose video could not be read, or whose episode was
lost, gets a row `{"sample", "failed": reason}`: counted as failed in the summary, not retried.

Free of Ray: `rollout` and `rewards` are the services `evaluation.episodes` uses.
"""
from __future__ import annotations

import json
from pathlib import Path

from vo3rl.evaluation.benchmarks import Benchmark
from vo3rl.log import ProgressLog, get_logger

log = get_logger(__name__)
MAX_LINE_CHARS = 1 << 24


def read_finished(path: Path) -> tuple[list[dict], int]:
    """The records of an earlier run's `episodes.jsonl` (scored and failed rows) and how many lines
    were unreadable (a run killed mid-write leaves a cut last line; it is run again)."""
    if not path.is_file():
        return [], 0
    records, bad = [], 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line[:MAX_LINE_CHARS])
            except ValueError:
                bad += 1
                continue
            if isinstance(record, dict) and isinstance(record.get("sample"), str):
                records.append(record)
            else:
                bad += 1
    return records, bad


IDENTITY_FILE = "evaluated.json"


def benchmark_folder(output_dir: str | Path, name: str) -> Path:
    """Where a benchmark's files go: `<run.output_dir>/eval/<name>/`."""
    return Path(output_dir) / "eval" / name


def evaluation_identity(model: str | Path, data_file: str | Path, tts: dict | None = None) -> dict:
    """What a benchmark folder's rows belong to: a rerun with the same identity resumes them.
    `tts` ({"n", "vote"}) marks test-time-scaling rows, never mixed with greedy ones."""
    identity = {"model": str(Path(model).resolve()), "data.eval": str(Path(data_file).resolve())}
    return {**identity, "tts": dict(tts)} if tts else identity


def identity_conflict(folder: Path, identity: dict) -> str | None:
    """Why `folder` cannot take this evaluation's rows: it holds episodes of another model or file
    (its `evaluated.json` differs); None when it is new or the same evaluation resumed."""
    path = folder / IDENTITY_FILE
    if not path.is_file():
        return None
    try:
        earlier = json.loads(path.read_text())
    except ValueError:
        earlier = None
    if earlier == identity:
        return None
    return (f"{folder} holds episodes of another evaluation ({path}: {earlier}); give another run.output_dir "
            f"to evaluate {identity}, or remove that folder to start over")


def pending(folder: Path, samples: list) -> list:
    """The samples an earlier run in `folder` has not finished (all of them when there is none)."""
    done = {record["sample"] for record in read_finished(folder / "episodes.jsonl")[0]}
    return [sample for sample in samples if sample.id not in done]


def _append(path: Path, records: list[dict]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(record) + "\n" for record in records))


def run_benchmark(rollout, rewards, samples: list, bench: Benchmark, folder: Path, identity: dict,
                  chunk_samples: int = 64, evaluate=None) -> tuple[dict, list[dict]]:
    """`bench`'s summary over every sample (this run's and an earlier run's) and all scored records;
    `folder/episodes.jsonl` grows by one row per sample as chunks finish. `identity` (the model and
    the file evaluated) is kept in `folder/evaluated.json`: rows of another evaluation are never mixed in.
    `evaluate(rollout, rewards, chunk) -> (metrics, records)` runs a chunk instead of the benchmark's own
    `records` (test-time scaling passes its own)."""
    conflict = identity_conflict(folder, identity)
    if conflict:
        raise ValueError(conflict)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / IDENTITY_FILE).write_text(json.dumps(identity, indent=2) + "\n")
    path = folder / "episodes.jsonl"
    earlier, bad = read_finished(path)
    if bad:  # rewrite without the unreadable lines, so that the file stays one record per line
        path.write_text("".join(json.dumps(record) + "\n" for record in earlier))
    done = {record["sample"] for record in earlier}
    todo = [sample for sample in samples if sample.id not in done]  # `rollout` is used only for these
    if done:
        log.info("%s: %d samples finished by an earlier run (%s), %d to go", bench.name, len(done), path, len(todo))
    progress = ProgressLog(bench.name, len(todo), unit="samples")
    for start in range(0, len(todo), chunk_samples):
        chunk = todo[start:start + chunk_samples]
        _, records = (evaluate or bench.records)(rollout, rewards, chunk)
        scored = {record["sample"] for record in records}
        skipped = getattr(rollout, "last_skipped", {})
        failed = [{"sample": s.id, "failed": skipped.get(s.id, "episode_lost")} for s in chunk if s.id not in scored]
        _append(path, records + failed)
        earlier += records + failed
        progress.update(start + len(chunk))
    wanted = {sample.id for sample in samples}
    rows = [record for record in earlier if record["sample"] in wanted]
    scored = [record for record in rows if "failed" not in record]
    return {**bench.summarise(scored, len(rows) - len(scored)), **agentic_stats(scored)}, scored


AGENTIC_FIELDS = ("tool_calls", "vision_tokens", "seconds")


def agentic_stats(records: list[dict]) -> dict:
    """Means per scored sample of what the episodes cost: `agent/turns` (assistant turns),
    `agent/tool_calls`, `agent/vision_tokens` and `agent/seconds` (wall, from its rollout call's start);
    a field missing from every record (rows of an older run) is left out."""
    if not records:
        return {}
    out = {"agent/turns": sum(len(r.get("turns") or []) for r in records) / len(records)}
    for name in AGENTIC_FIELDS:
        values = [float(r[name]) for r in records if isinstance(r.get(name), (int, float))]
        if values:
            out[f"agent/{name}"] = sum(values) / len(values)
    return out
