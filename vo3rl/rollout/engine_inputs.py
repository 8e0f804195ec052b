"""A context as vLLM 0.32 takes it: token ids with ONE `<|video_pad|>` per video, plus the frames.

Why one pad per video: vLLM's Qwen2.5-VL processor always applies its prompt update, replacing each
single `<|video_pad|>` by the video's full run (grid t·h·w / 4 pads). A context whose runs are already
expanded is expanded again, pad by pad, and silently goes wrong (measured: 490 tokens became 680). So
each run is collapsed here; vLLM expands it back to exactly the ids of the Trajectory (the engine checks
every prompt it gets back), and those final ids are what its prefix cache hashes, so turn k+1 reuses
the blocks of turn k.

Each video also gets a stable identifier (`multi_modal_uuids`) from its file identity and sampling
spec, so vLLM neither re-hashes nor re-processes frames it has seen in an earlier turn; a `salt`
makes them unique per request instead (the decoupled baseline, where every turn re-encodes everything).
"""
from __future__ import annotations

import hashlib

from vo3rl.video.sources import file_key
from vo3rl.video.timing import vllm_video_item
from vo3rl.video.types import Clip, VideoError


def collapse_video_pads(context: list[int], pad_id: int) -> list[int]:
    """`context` with every run of `pad_id` shortened to one token."""
    out: list[int] = []
    previous = None
    for token in context:
        if token == pad_id and previous == pad_id:
            continue
        out.append(token)
        previous = token
    return out


def count_pad_runs(context: list[int], pad_id: int) -> int:
    return sum(1 for i, token in enumerate(context) if token == pad_id and (i == 0 or context[i - 1] != pad_id))


def video_uuid(span, salt: str | None = None) -> str:
    """Identity of one sampled video: the file's identity (path, mtime, size), the sampling spec, and
    an optional salt. Equal for the same frames in every turn of every episode."""
    try:
        identity = file_key(span.ref)
    except VideoError:
        identity = (span.ref.path, span.ref.frame_fps)
    text = repr((identity, span.spec, tuple(span.grid_thw), salt))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def engine_prompt(context: list[int], clips: list[Clip], videos: list, pad_id: int,
                  salt: str | None = None) -> dict:
    """The vLLM prompt dict of a context: `prompt_token_ids` (pads collapsed), `multi_modal_data`
    (frames timed as the learner times them, see `vo3rl.model.video_inputs`) and `multi_modal_uuids`.
    `videos` are the context's VideoSpans, in the order of `clips` (None: vLLM hashes that clip's
    frames). Raises ValueError when the
    context's video count does not match `clips`."""
    runs = count_pad_runs(context, pad_id)
    if runs != len(clips) or len(videos) != len(clips):
        raise ValueError(f"context has {runs} video-pad runs, {len(clips)} clips and {len(videos)} spans")
    prompt: dict = {"prompt_token_ids": collapse_video_pads(context, pad_id)}
    if clips:
        prompt["multi_modal_data"] = {"video": [vllm_video_item(clip) for clip in clips]}
        uuids = [None if span is None else video_uuid(span, salt) for span in videos]
        if any(uuid is not None for uuid in uuids):
            prompt["multi_modal_uuids"] = {"video": uuids}
    return prompt
