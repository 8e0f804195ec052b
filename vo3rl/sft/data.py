"""SFT chats -> Trajectories, with every unusable example skipped, counted and named.

Skip reasons: `no_assistant_turn` (none, or only `trained=False` ones), `too_long` (more tokens than
the context limit), the sampler's video reasons (`missing`, `codec`, …), `bad_example` (a chat the
renderer rejects), plus the reader's own (bad JSON, bad fields). Held-out split: a stable hash of the sample id.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from vo3rl.agent.render import TokenBytes, from_sft_example
from vo3rl.data.readers import read_sft
from vo3rl.data.skips import SkipLog
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoError


@dataclass
class SFTSplit:
    train: list = field(default_factory=list)
    held_out: list = field(default_factory=list)
    skips: SkipLog = field(default_factory=SkipLog)


def held_out(sample_id: str, fraction: float) -> bool:
    """True for about `fraction` of ids, the same ids on every run and machine."""
    return (zlib.crc32(sample_id.encode()) % 10_000) < fraction * 10_000


def load_sft_trajectories(path: str, tokenizer, presets: dict, max_length: int, protocol: str = "",
                          eval_fraction: float = 0.0, data_root: str | None = None,
                          cache: DecodeCache | None = None, stage: str = "sft", fmt: str = "chat") -> SFTSplit:
    """Read `path` (SFT format `fmt`: chat, seeker_sft, stgr_sft), render each example into a Trajectory (videos sampled with `presets`: name ->
    SamplingSpec), split off the held-out share."""
    skips = SkipLog(stage=f"{stage} {path}")
    split = SFTSplit(skips=skips)
    cache = cache if cache is not None else DecodeCache()
    token_bytes = TokenBytes(tokenizer)

    def clip_for(use, ref):
        return sample_clip(ref, presets[use.preset].window(use.start_s, use.end_s), cache)

    for example in read_sft(path, fmt, data_root or None, skips):
        sid = example.sample.id
        if protocol and example.protocol != protocol:
            continue
        if not any(turn.role == "assistant" and turn.trained for turn in example.turns):
            skips.add(sid, "no_assistant_turn", "the chat has no trained assistant turn to train on")
            continue
        try:
            traj = from_sft_example(example, tokenizer, lambda use: clip_for(use, example.sample.video),
                                    token_bytes=token_bytes)
        except VideoError as err:
            skips.add_error(err, sid)
            continue
        except (ValueError, KeyError) as err:
            skips.add(sid, "bad_example", str(err)[:200])
            continue
        if len(traj) > max_length:
            skips.add(sid, "too_long", f"{len(traj)} tokens > max_length {max_length}")
            continue
        (split.held_out if held_out(sid, eval_fraction) else split.train).append(traj)
    return split
