"""A run's report folder: one PNG per panel and stage, and `report.md` embedding them."""
from __future__ import annotations

from pathlib import Path

from vo3rl.report.draw import draw_before_after, draw_panel
from vo3rl.report.panels import PANELS, before_after, read_metrics


def stage_files(run_dir: Path) -> list[Path]:
    """Every `metrics.jsonl` below `run_dir` (its stages: sft/, rl/, …), in path order."""
    return sorted(p for p in run_dir.rglob("metrics.jsonl") if "wandb" not in p.parts)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Draw the report of `run_dir` into `out_dir` (default `<run_dir>/report`); returns report.md.
    Raises FileNotFoundError when `run_dir` holds no metrics.jsonl."""
    run_dir = Path(run_dir)
    files = stage_files(run_dir)
    if not files:
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl below it (is it a run's output folder?)")
    out = Path(out_dir) if out_dir else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Report: {run_dir.name}", ""]
    for path in files:
        name = str(path.parent.relative_to(run_dir)) if path.parent != run_dir else run_dir.name
        stage = read_metrics(path, name)
        lines += [f"## {name}", "", f"From `{path.relative_to(run_dir)}`."]
        if stage.skipped_lines or stage.skipped_values:
            lines.append(f"Left out: {stage.skipped_lines} unreadable line(s), {stage.skipped_values} non-numeric value(s).")
        lines.append("")
        slug = name.replace("/", "_")
        for panel in PANELS:
            image = out / f"{slug}_{panel.name}.png"
            if draw_panel(panel, stage, image):
                lines += [f"![{panel.title}]({image.name})", ""]
        pairs = before_after(stage)
        image = out / f"{slug}_before_after.png"
        if draw_before_after(stage, pairs, image):
            lines += [f"![evaluation before and after]({image.name})", "", "| metric | before | after |", "|---|---|---|"]
            lines += [f"| {key} | {first:.3f} | {last:.3f} |" for key, (first, last) in pairs.items()]
            lines.append("")
    page = out / "report.md"
    page.write_text("\n".join(lines))
    return page
