"""Drawing the panels with matplotlib (its file-only Agg backend: no display is needed)."""
from __future__ import annotations

from pathlib import Path

from vo3rl.report.panels import Panel, StageMetrics

DPI = 110
SIZE_INCHES = (7.0, 3.6)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def draw_panel(panel: Panel, stage: StageMetrics, path: Path) -> bool:
    """`panel`'s series of `stage` as a line plot (points where a series has one value) in `path`;
    False, and nothing written, when the stage has none of them."""
    keys = panel.keys(sorted(stage.series))
    if not keys:
        return False
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=SIZE_INCHES, dpi=DPI)
    if len(keys) > 10:  # the default cycle has 10 colours: two series would share one
        axes.set_prop_cycle(color=plt.cm.tab20.colors)
    for key in keys:
        steps, values = stage.series[key]
        axes.plot(steps, values, marker="o" if len(values) < 20 else None, markersize=3, label=key)
    axes.set_title(f"{stage.name}: {panel.title}")
    axes.set_xlabel("step")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel(panel.ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2 if len(keys) > 6 else 1)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


# Counts and seconds, on another scale than the reward terms (hundreds of tokens or tens of seconds
# next to fractions): table only.
COUNT_SUFFIXES = ("tokens", "turns", "tool_calls", "errors_per_trajectory", "seconds", "skipped_videos", "skipped_rows")


def bar_names(pairs: dict[str, tuple[float, float]]) -> list[str]:
    """The metrics drawn as before/after bars: scores, not counts or seconds."""
    return [name for name in pairs if not name.endswith(COUNT_SUFFIXES)]


def draw_before_after(stage: StageMetrics, pairs: dict[str, tuple[float, float]], path: Path) -> bool:
    """Paired bars: each evaluation score before (first evaluation) and after (last); counts are
    left to the page's table."""
    names = bar_names(pairs)
    if not names:
        return False
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(max(SIZE_INCHES[0], 0.5 * len(names)), SIZE_INCHES[1]), dpi=DPI)
    positions = range(len(names))
    axes.bar([p - 0.2 for p in positions], [pairs[n][0] for n in names], width=0.4, label="before")
    axes.bar([p + 0.2 for p in positions], [pairs[n][1] for n in names], width=0.4, label="after")
    axes.set_xticks(list(positions), [n.split("/", 1)[-1] for n in names], rotation=60, ha="right", fontsize=7)
    axes.set_title(f"{stage.name}: evaluation before and after")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
