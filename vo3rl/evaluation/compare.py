"""Did training help? Two evaluations of the same held-out episodes, compared pair by pair.

The demo evaluates the SFT model and the RL model on the same samples (greedy, so each model has one
episode per sample). For a yes/no outcome per episode (answered right, hit a clue) the fitting test is
the exact McNemar test: only the samples where the two models differ carry information, and under "RL
is no better" each such sample is as likely to favour either model. The one-sided p-value is
P(Binomial(b + c, 1/2) >= c), with c the samples only the RL model got and b those only the SFT model
got. Pure functions, no I/O.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

# Keys of an evaluation's metrics (`evaluate_records`) the run summary keeps, under shorter names.
SUMMARY_KEYS = {"n": "eval/n", "accuracy": "eval/accuracy", "format": "eval/format",
                "clue_hit_rate": "eval/clue_hit_rate", "clue_iog": "eval/clue_iog_tool",
                "tool_calls": "eval/tool_calls", "accuracy_tool": "eval/accuracy_tool",
                "accuracy_no_tool": "eval/accuracy_no_tool"}


def eval_summary(metrics: dict) -> dict:
    """The summary's view of one evaluation: episodes `n`, accuracy, format, clue hit rate, clue IoG
    (over the episodes that need the tool), valid tool calls per episode, accuracy by tool need."""
    return {short: metrics[key] for short, key in SUMMARY_KEYS.items() if key in metrics}


def mcnemar_one_sided(only_before: int, only_after: int) -> float:
    """Exact one-sided McNemar p-value that `after` is better: P(X >= only_after) for
    X ~ Binomial(only_before + only_after, 1/2). 1.0 when no pair differs."""
    n = only_before + only_after
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(only_after, n + 1)) / 2**n


def _correct(record: dict) -> bool | None:
    return record.get("components", {}).get("accuracy", 0.0) > 0.5


def _clue_hit(record: dict) -> bool | None:
    seek = record.get("seek") or {}
    return seek.get("clue_hit") if seek.get("needs_tool") else None  # only episodes that need the tool count


OUTCOMES: dict[str, Callable[[dict], bool | None]] = {"accuracy": _correct, "clue_hit_rate": _clue_hit}


def paired_gain(before: Sequence[dict], after: Sequence[dict], outcome: str) -> dict:
    """Compare two evaluations' episode records (`episode_record`) sample by sample on `outcome`
    ("accuracy" or "clue_hit_rate"). Samples in only one evaluation, or where the outcome does not
    apply (a clue hit of a no-tool sample), are left out. Returns the pair count `n`, the rates
    before and after over those pairs, `only_before` / `only_after` (discordant pairs) and the exact
    one-sided McNemar `p_value` that after is better."""
    judge = OUTCOMES[outcome]
    after_by_sample = {record["sample"]: record for record in after}
    pairs = []
    for record in before:
        other = after_by_sample.get(record["sample"])
        if other is None:
            continue
        first, second = judge(record), judge(other)
        if first is not None and second is not None:
            pairs.append((bool(first), bool(second)))
    only_before = sum(1 for first, second in pairs if first and not second)
    only_after = sum(1 for first, second in pairs if second and not first)
    n = len(pairs)
    return {"n": n, "before": sum(f for f, _ in pairs) / n if n else None,
            "after": sum(s for _, s in pairs) / n if n else None,
            "only_before": only_before, "only_after": only_after,
            "p_value": mcnemar_one_sided(only_before, only_after)}


def compare_evaluations(before_metrics: dict, before_records: Sequence[dict],
                        after_metrics: dict, after_records: Sequence[dict]) -> dict:
    """The run summary's `eval` block: `after_sft` and `after_rl` (`eval_summary`) and `paired`, the
    McNemar comparison of accuracy and clue hits over the samples both evaluated."""
    return {"after_sft": eval_summary(before_metrics), "after_rl": eval_summary(after_metrics),
            "paired": {outcome: paired_gain(before_records, after_records, outcome) for outcome in OUTCOMES},
            "test": "exact one-sided McNemar (H1: after RL is better), pairs = same held-out sample"}
