"""V-STAR: both chains of every row, scored as the spec defines (methods.md section 8).

Per row, two greedy conversations (`vo3rl.agent.chain`): chain 1 what -> when -> where, chain 2
what -> where -> when. Their first turns are the same request, so the "what" answer is chain 1's.

- Accuracy: the judge's rating 0-3 of the "what" answer, correct when >= 2 (`reward.judge`, the
  paper's rule). Without a judge, or when it fails, the ROUGE rule score >= 0.5 decides, and
  `judge_used` (the share of rows the judge rated) says how much of the number is the paper's rule.
- m_tIoU per chain: the IoU of the "when" answer's interval with the row's `timestamps`.
- m_vIoU per chain: over the annotated seconds (each key frame's whole second), the IoU of the box
  the "where" answer gives for that second with the annotated one; a second without a box scores 0.
  Boxes are written in pixels of the frames the model saw and compared as fractions of the frame.
- AM / LGM per chain, then mAM / mLGM (`metrics.mam_mlgm`), once over every sample (a failed one
  scoring 0 everywhere) and once over the readable ones (`_readable`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from vo3rl.agent.chain import CHAINS
from vo3rl.agent.parse import final_answer, parse_claims, parse_interval
from vo3rl.evaluation.episodes import episode_record
from vo3rl.evaluation.metrics import am, lgm, m_viou, mam_mlgm
from vo3rl.rewards import RewardConfig
from vo3rl.rewards.answer import free_form_reward, interval_iou, normalise_box
from vo3rl.rewards.judge import judge_answer
from vo3rl.rl.scoring import seen_frame_size


@dataclass
class ChainScores:
    """What `episode_record` reads of a result: the row's scores as reward-like components."""

    components: dict[str, float]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.components["accuracy"]


def _answer(texts: list[str], chain: int, step: str) -> str | None:
    """The answer of `step` in a chain's turns (its <answer>, else the whole turn); None if unanswered."""
    index = CHAINS[chain].index(step)
    if index >= len(texts):
        return None
    return final_answer(texts[index]) or texts[index]


def boxes_by_second(answer: str | None, frame_size: tuple[int, int] | None) -> dict[int, tuple]:
    """The first box the answer gives for each whole second (`at<t>…</t>s`), as fractions of the frame."""
    out: dict[int, tuple] = {}
    for claim in parse_claims(answer).claims if answer else ():
        if claim.time_s is None or not claim.boxes or not math.isfinite(claim.time_s):
            continue
        box = normalise_box(claim.boxes[0], frame_size)
        if box is not None:
            out.setdefault(int(math.floor(claim.time_s)), box)
    return out


def annotated_by_second(sample) -> dict[int, tuple]:
    """The row's first annotated box in each whole second (fractions of the frame)."""
    out: dict[int, tuple] = {}
    for key_frame in sample.key_frames:
        for boxes in key_frame.boxes.values():
            if boxes:
                out.setdefault(int(math.floor(key_frame.time_s)), tuple(boxes[0]))
    return out


def score_chains(sample, chains: dict, reward: RewardConfig) -> ChainScores:
    """Accuracy (0/1, the judge's rule), whether the judge rated it, and each chain's tIoU and vIoU.
    `chains`: chain number -> its Trajectory."""
    what = _answer(chains[1].assistant_texts, 1, "what")
    verdict = judge_answer(sample.question, sample.answer, what, reward.judge, fallback=free_form_reward(what, sample.answer))
    parts = {"accuracy": float(verdict.correct()), "judge_used": float(verdict.used_judge)}
    errors = {"judge": verdict.error} if verdict.error and reward.judge.enabled else {}
    truth = sample.clues[0] if sample.clues else None
    annotated = annotated_by_second(sample)
    for chain, trajectory in sorted(chains.items()):
        texts = trajectory.assistant_texts
        interval = parse_interval(_answer(texts, chain, "when")).interval
        parts[f"tiou_chain{chain}"] = interval_iou(interval, truth)
        predicted = boxes_by_second(_answer(texts, chain, "where"), seen_frame_size(trajectory))
        parts[f"viou_chain{chain}"] = m_viou(predicted, annotated) if annotated else 0.0
    return ChainScores(parts, errors)


def vstar_records(rollout, rewards, samples: list) -> tuple[dict, list[dict]]:
    """Both chains of every sample on `rollout`, scored in this process (the judge, when enabled, is
    asked from here); a sample that lost either chain gets no record (the caller marks it failed).
    `rewards` is only read for its reward config (`cfg`)."""
    reward = getattr(rewards, "cfg", None) or RewardConfig(protocol="open_o3")
    runs = {chain: {t.sample_id: t for t in rollout.generate(samples, 1, f"vstar_chain{chain}")} for chain in CHAINS}
    records = []
    for sample in samples:
        chains = {chain: runs[chain].get(sample.id) for chain in CHAINS}
        if any(trajectory is None for trajectory in chains.values()):
            continue
        scores = score_chains(sample, chains, reward)
        record = episode_record(sample, chains[1], scores)
        record["prediction"] = _answer(chains[1].assistant_texts, 1, "what")
        record["chains"] = {str(chain): {"steps": list(CHAINS[chain]), "turns": t.assistant_texts,
                                         "tiou": scores.components[f"tiou_chain{chain}"],
                                         "viou": scores.components[f"viou_chain{chain}"]}
                            for chain, t in chains.items()}
        records.append(record)
    return {}, records


def _summary(records: list[dict], failed: int) -> dict:
    n = len(records) + failed

    def mean(name: str) -> float:
        return sum(float(r["components"][name]) for r in records) / n if n else 0.0

    acc = mean("accuracy")
    out = {"accuracy": acc}
    for chain in CHAINS:
        tiou, viou = mean(f"tiou_chain{chain}"), mean(f"viou_chain{chain}")
        out.update({f"m_tIoU/chain{chain}": tiou, f"m_vIoU/chain{chain}": viou,
                    f"AM/chain{chain}": am(acc, tiou, viou), f"LGM/chain{chain}": lgm(acc, tiou, viou)})
    out["mAM"], out["mLGM"] = mam_mlgm(acc, out["m_tIoU/chain1"], out["m_tIoU/chain2"],
                                       out["m_vIoU/chain1"], out["m_vIoU/chain2"])
    return out


def vstar(records: list[dict], failed: int) -> dict:
    """The V-STAR summary: over every sample (failed ones score 0) and over the readable ones."""
    out = {"n": len(records), "failed": failed, **_summary(records, failed)}
    out.update({f"{name}_readable": value for name, value in _summary(records, 0).items()})
    out["judge_used"] = sum(float(r["components"]["judge_used"]) for r in records) / len(records) if records else 0.0
    return out
