"""The paired comparison of two evaluations (vo3rl.evaluation.compare): the exact McNemar p-value and
which episode pairs it counts."""
import math

import pytest

from vo3rl.evaluation.compare import compare_evaluations, eval_summary, mcnemar_one_sided, paired_gain


def record(sample, correct, needs_tool=True, hit=None):
    seek = {"needs_tool": needs_tool}
    if hit is not None:
        seek["clue_hit"] = hit
    return {"sample": sample, "components": {"accuracy": 1.0 if correct else 0.0}, "seek": seek}


def test_mcnemar_matches_the_binomial_tail():
    assert mcnemar_one_sided(0, 0) == 1.0
    assert mcnemar_one_sided(0, 5) == pytest.approx(1 / 32)
    assert mcnemar_one_sided(5, 0) == 1.0
    # 3 vs 12 discordant pairs: P(X >= 12), X ~ Bin(15, 1/2)
    expected = sum(math.comb(15, k) for k in range(12, 16)) / 2**15
    assert mcnemar_one_sided(3, 12) == pytest.approx(expected)
    assert mcnemar_one_sided(6, 6) > 0.5  # a tie is no evidence


def test_paired_gain_counts_only_discordant_pairs_of_shared_samples():
    before = [record("a", True), record("b", False), record("c", False), record("d", True), record("only_before", False)]
    after = [record("a", True), record("b", True), record("c", True), record("d", False), record("only_after", True)]
    gain = paired_gain(before, after, "accuracy")
    assert gain["n"] == 4
    assert (gain["only_before"], gain["only_after"]) == (1, 2)
    assert gain["before"] == 0.5 and gain["after"] == 0.75
    assert gain["p_value"] == pytest.approx(mcnemar_one_sided(1, 2))


def test_clue_hits_pair_only_episodes_that_need_the_tool():
    before = [record("t1", False, True, False), record("t2", False, True, False), record("n1", True, False)]
    after = [record("t1", True, True, True), record("t2", False, True, True), record("n1", True, False)]
    gain = paired_gain(before, after, "clue_hit_rate")
    assert gain["n"] == 2 and gain["only_after"] == 2 and gain["before"] == 0.0 and gain["after"] == 1.0


def test_compare_evaluations_keeps_the_summary_keys():
    metrics = {"eval/n": 2, "eval/accuracy": 0.5, "eval/format": 1.0, "eval/clue_hit_rate": 0.5,
               "eval/clue_iog_tool": 0.25, "eval/tool_calls": 1.0, "eval/total": 9.0}
    assert eval_summary(metrics) == {"n": 2, "accuracy": 0.5, "format": 1.0, "clue_hit_rate": 0.5,
                                     "clue_iog": 0.25, "tool_calls": 1.0}
    block = compare_evaluations(metrics, [record("a", False, True, False)], metrics, [record("a", True, True, True)])
    assert set(block) == {"after_sft", "after_rl", "paired", "test"}
    assert block["paired"]["accuracy"]["only_after"] == 1
    assert block["paired"]["clue_hit_rate"]["only_after"] == 1
