"""Open-o3 Video's spatial reward r_s: are the cited boxes right, at a moment that was annotated?"""
from __future__ import annotations

from vo3rl.agent.parse import Claim
from vo3rl.data.schema import KeyFrame
from vo3rl.rewards.answer import box_iou, normalise_box


def spatial_reward(
    claims: list[Claim],
    key_frames: list[KeyFrame],
    frame_size: tuple[int, int] | None,
    tau_s: float = 3.0,
) -> float:
    """r_s = mean over claims m of 1[|t_m − t_j*| ≤ τ] · v_m.

    j* is the key frame nearest to the claim's time t_m (seconds); v_m the best IoU of the claim's
    boxes against every ground-truth box of frame j*. Claim boxes are pixels of the model's resized
    frame, `frame_size` = (width, height); ground-truth boxes are fractions of the frame. A claim
    without a time or boxes scores 0 and still counts in the mean; no claims or no key frames give 0.
    """
    if not claims or not key_frames:
        return 0.0
    total = 0.0
    for claim in claims:
        if claim.time_s is None or not claim.boxes:
            continue
        nearest = min(key_frames, key=lambda kf: abs(kf.time_s - claim.time_s))
        if not abs(claim.time_s - nearest.time_s) <= tau_s:
            continue
        truth = [box for boxes in nearest.boxes.values() for box in boxes]
        total += max(
            (box_iou(normalise_box(box, frame_size), gt) for box in claim.boxes for gt in truth), default=0.0
        )
    return total / len(claims)
