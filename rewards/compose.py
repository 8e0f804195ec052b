"""Reward composition from recipe keys: which terms count, with which weights, per task / data type.

`score` returns the total and every component; a term that raises scores 0 for its part and the
error is recorded by name, so one bad output never stops a step.

Video-o3:  R = w_format·r_fmt + w_accuracy·r_acc·(1 + w_bonus·β)   (β only when r_acc = r_fmt = 1)
Open-o3:   R = w_format·r_fmt + w_accuracy·r_acc + w_temporal·r_t + w_spatial·r_s
"""
from __future__ import annotations

from dataclasses import dataclass, field

from vo3rl.agent.parse import (
    TurnKind,
    as_text,
    classify_turn,
    final_answer,
    parse_claims,
    parse_interval,
    parse_timestamps,
    parse_tool_call,
    think_text,
)
from vo3rl.config.reward import TERMS, RewardConfig
from vo3rl.data.schema import Sample, Task
from vo3rl.rewards import answer as answers
from vo3rl.rewards.clue import clue_overlap
from vo3rl.rewards.format import open_o3_format, video_o3_format
from vo3rl.rewards.judge import judge_answer
from vo3rl.rewards.spatial import spatial_reward
from vo3rl.rewards.temporal import interval_fraction, sigma_at, temporal_proximity
from vo3rl.rewards.trajectory import BonusTable, trajectory_bonus, turn_decay, video_o3_reward

TEMPORAL_TASKS = (Task.TEMPORAL_GROUNDING, Task.TG_MCQ)


def weights_for(cfg: RewardConfig, sample: Sample) -> dict[str, float]:
    """The term weights that apply to `sample`: default, then its task's, then its data type's."""
    merged = {term: 0.0 for term in TERMS}
    for key in ("default", _value(sample.task), _value(sample.data_type)):
        merged.update(cfg.weights.get(key, {}))
    return merged


def bonus_table(cfg: RewardConfig) -> BonusTable:
    return BonusTable(cfg.decay_lambda, cfg.bonus_base, cfg.clue_weight,
                      cfg.single_no_tool_bonus, cfg.multi_no_tool_bonus)


def _value(enum_or_str) -> str:
    return getattr(enum_or_str, "value", enum_or_str)


@dataclass
class RewardResult:
    total: float
    components: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class _Recorder:
    """Runs terms, keeping their components; a term that raises leaves 0 and its error."""

    def __init__(self) -> None:
        self.components: dict[str, float] = {}
        self.errors: dict[str, str] = {}

    def run(self, name: str, term, *args) -> float:
        try:
            parts = term(*args)
        except Exception as exc:  # untrusted input must never stop a step; the error is kept
            self.errors[name] = f"{type(exc).__name__}: {exc}"[:300]
            self.components[name] = 0.0
            return 0.0
        if isinstance(parts, dict):
            self.components.update(parts)
            return parts[name]
        self.components[name] = float(parts)
        return float(parts)


def answer_terms(sample: Sample, answer: str | None, cfg: RewardConfig, frame_size) -> dict[str, float]:
    """r_acc by task, with its sub-scores."""
    task = Task(_value(sample.task))
    if task == Task.MCQ:
        return {"accuracy": answers.choice_reward(answer, sample.answer)}
    if task == Task.FREE_FORM:
        rouge = answers.rouge_scores(answer, sample.answer) if answer is not None else {}
        rule = sum(rouge.values()) / 3.0 if rouge else 0.0
        parts = {f"accuracy_{name}": value for name, value in rouge.items()}
        if cfg.judge.enabled:
            verdict = judge_answer(sample.question, sample.answer, answer, cfg.judge, fallback=rule)
            parts["accuracy_judge_used"] = float(verdict.used_judge)
            return {"accuracy": verdict.score, **parts}
        return {"accuracy": rule, **parts}
    if task == Task.TEMPORAL_GROUNDING:
        return {"accuracy": answers.temporal_answer_reward(answer, sample.answer)}
    if task == Task.TG_MCQ:
        letter, tiou = answers.tg_mcq_reward(answer, sample.answer)
        return {"accuracy": letter + tiou, "accuracy_letter": letter, "accuracy_tiou": tiou}
    return {"accuracy": answers.spatial_answer_reward(answer, sample.answer, frame_size)}


def _clue_terms(sample: Sample, segments, data_type, tool_calls: int, cfg: RewardConfig) -> dict[str, float]:
    overlap = clue_overlap(segments, sample.clues)
    table = bonus_table(cfg)
    return {
        "bonus": trajectory_bonus(data_type, tool_calls, overlap.single, overlap.multi, table),
        "decay": turn_decay(data_type, tool_calls, table),
        "clue_single": overlap.single, "clue_multi": overlap.multi,
        "clue_iou": overlap.iou, "clue_iop": overlap.iop, "clue_iog": overlap.iog, "clue_diou": overlap.diou,
    }


def _score_video_o3(sample: Sample, turns: list[str], cfg: RewardConfig, weights, frame_size, rec: _Recorder) -> float:
    strategies = tuple(cfg.strategies)
    calls = [parse_tool_call(t, sample.duration_s, strategies, cfg.min_segment_s)
             for t in turns if classify_turn(t) == TurnKind.TOOL_CALL]
    rec.components["tool_calls"] = float(len(calls))

    def format_term():
        # When the form is right, every turn but the last is a call, so `calls` are those turns' parses.
        fmt = video_o3_format(turns, sample.duration_s, calls)
        return {"format": fmt.score, "format_json_errors": float(fmt.json_errors),
                "format_well_formed": float(fmt.well_formed)}

    r_fmt = rec.run("format", format_term) if weights["format"] else 0.0
    answer = final_answer(turns[-1]) if turns else None
    r_acc = rec.run("accuracy", answer_terms, sample, answer, cfg, frame_size) if weights["accuracy"] else 0.0
    beta = 0.0
    if weights["bonus"]:
        segments = [(c.call.start_s, c.call.end_s) for c in calls if c.ok]
        beta = rec.run("bonus", _clue_terms, sample, segments, sample.data_type, len(calls), cfg)
    rec.components["bonus_paid"] = float(beta if (r_acc == 1.0 and r_fmt == 1.0) else 0.0)
    return video_o3_reward(r_fmt, r_acc, beta, weights["format"], weights["accuracy"], weights["bonus"])


def _temporal_term(sample: Sample, times: list[float], cfg: RewardConfig, progress: float) -> dict[str, float]:
    interval = parse_interval(sample.answer).interval if _value(sample.task) in {t.value for t in TEMPORAL_TASKS} else None
    intervals = [interval] if interval is not None else [tuple(c) for c in sample.clues]
    key_times = [kf.time_s for kf in sample.key_frames]
    if interval is None and key_times:
        sigma = sigma_at(progress, cfg.sigma_start, cfg.sigma_end, cfg.sigma_anneal_fraction)
        return {"temporal": temporal_proximity(times, key_times, sigma), "temporal_sigma": sigma}
    return {"temporal": interval_fraction(times, intervals)}


def _score_open_o3(sample, turns, cfg: RewardConfig, weights, frame_size, progress, rec: _Recorder) -> float:
    text = "\n".join(turns)
    temporal_task = _value(sample.task) in {t.value for t in TEMPORAL_TASKS}
    total = 0.0
    if weights["format"]:
        total += weights["format"] * rec.run("format", open_o3_format, text, temporal_task)
    if weights["accuracy"]:
        total += weights["accuracy"] * rec.run("accuracy", answer_terms, sample, final_answer(text), cfg, frame_size)
    reasoning = think_text(text) if (weights["temporal"] or weights["spatial"]) else ""
    if weights["temporal"]:
        total += weights["temporal"] * rec.run("temporal", _temporal_term, sample, parse_timestamps(reasoning),
                                               cfg, progress)
    if weights["spatial"]:
        claims = parse_claims(reasoning).claims
        rec.components["claims"] = float(len(claims))
        total += weights["spatial"] * rec.run("spatial", spatial_reward, list(claims), sample.key_frames,
                                              frame_size, cfg.gate_tau_s)
    return total


def score(
    sample: Sample,
    turns: list[str | bytes],
    cfg: RewardConfig,
    progress: float = 0.0,
    frame_size: tuple[int, int] | None = None,
) -> RewardResult:
    """Score one trajectory: `turns` are its assistant texts in order, `progress` the fraction of
    training done (0..1, for σ), `frame_size` the (width, height) in pixels of the frames the model
    saw (its boxes are in those pixels)."""
    rec = _Recorder()
    texts = [as_text(t) for t in turns]
    try:
        weights = weights_for(cfg, sample)
        if cfg.protocol == "open_o3":
            total = _score_open_o3(sample, texts, cfg, weights, frame_size, progress, rec)
        else:
            total = _score_video_o3(sample, texts, cfg, weights, frame_size, rec)
    except Exception as exc:  # a broken sample or config: the trajectory scores 0 and says why
        rec.errors["score"] = f"{type(exc).__name__}: {exc}"[:300]
        total = 0.0
    rec.components["total"] = total
    return RewardResult(total, rec.components, rec.errors)
