"""The Trajectory record: one agent episode as the learner needs it, and nothing heavier.

Rollout builds it, reward workers read its texts, the learner turns it back into model inputs by
re-sampling each video from its reference and spec. It carries no pixels; its arrays are compressed
when pickled (video-pad runs and NaN log-prob runs shrink to almost nothing), so a long multi-video
trajectory crosses process boundaries in a few kB.
"""
from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from vo3rl.agent.parse import ToolCall, find_tags
from vo3rl.video.types import SamplingSpec, VideoRef

TAGS = ("think", "grounding", "answer", "obj", "box", "t")


class Role(IntEnum):
    """Who produced a token. Only ASSISTANT tokens are trained. ASSISTANT_UNTRAINED is assistant text
    kept in the context without loss: an SFT turn flagged `trained=False` (a recovery chat's refused
    tool call). Rollouts never make it, so RL code that counts ASSISTANT tokens counts every
    generated token."""

    PROMPT = 0
    ASSISTANT = 1
    OBSERVATION = 2
    ASSISTANT_UNTRAINED = 3


@dataclass(frozen=True)
class VideoSpan:
    """One video in the context: where to re-sample it (`ref`, `spec`), and its `<|video_pad|>` run
    as token indices [start, end). `grid_thw` is Qwen2.5-VL's (temporal patches, 14-px rows, 14-px
    columns); `turn` is the user turn that showed it (0 = the first prompt)."""

    ref: VideoRef
    spec: SamplingSpec
    start: int
    end: int
    n_vision_tokens: int
    grid_thw: tuple[int, int, int]
    n_frames: int
    turn: int


@dataclass(frozen=True)
class TagTokens:
    """A `<tag>…</tag>` in an assistant turn as tokens [start, end): from the token holding the `<`
    of the opening to the token holding the `>` of the closing (Qwen's BPE merges `>` with the next
    character, so those tokens may also hold a little of the neighbouring text)."""

    tag: str
    turn: int
    start: int
    end: int


def tag_token_spans(token_bytes: list[bytes], turn: int, offset: int = 0, tags=TAGS) -> list[TagTokens]:
    """Tag spans of one assistant turn from the bytes of each of its tokens. Tags are found in the
    decoded text by character (byte) offsets, then mapped to tokens; `offset` is the index of the
    turn's first token in the whole sequence."""
    starts, position = [], 0
    for piece in token_bytes:
        starts.append(position)
        position += len(piece)
    text = b"".join(token_bytes).decode("latin-1")  # one char per byte, so offsets are byte offsets
    spans = []
    for tag in tags:
        for span in find_tags(text, tag):
            first = bisect.bisect_right(starts, span.open_start) - 1
            last = bisect.bisect_right(starts, span.close_end - 1) - 1
            spans.append(TagTokens(tag, turn, offset + first, offset + last + 1))
    spans.sort(key=lambda s: (s.start, s.tag))
    return spans


def pack_array(array: np.ndarray | None, dtype) -> bytes | None:
    """`array` as zlib-compressed bytes of `dtype` (None stays None): how per-token arrays cross process
    boundaries (runs of video pads and of NaN log-probs compress to almost nothing)."""
    if array is None:
        return None
    return zlib.compress(np.ascontiguousarray(array, dtype=dtype).tobytes(), 1)


def unpack_array(packed: bytes | None, dtype) -> np.ndarray | None:
    """The writable array `pack_array` packed (None stays None)."""
    if packed is None:
        return None
    return np.frombuffer(zlib.decompress(packed), dtype=dtype).copy()


_PACKED = (("token_ids", np.int32), ("roles", np.uint8), ("logprobs", np.float32))


@dataclass
class Trajectory:
    """One episode, as the rollout produced it (what the RL step computes from it, advantages and
    behaviour log-probs, travels beside it in `vo3rl.rl.policy_loss.PolicyLossInputs`). Arrays have one
    entry per token: `token_ids` int32, `roles` uint8 (Role), `logprobs` float32 rollout log-probs
    (nats; NaN where the token was not generated; None for SFT).

    `assistant_texts` are the decoded assistant turns; `tool_calls` the valid calls in order;
    `turn_errors` the error kind of every turn that failed (invalid call, neither call nor answer,
    unreadable video). An `exceeded` trajectory hit a limit (`exceeded_reason`): it keeps its reward
    for the group statistics but trains nothing. `seconds`: wall seconds from the start of the rollout
    call that made it to its last turn (episodes of a call run concurrently; 0.0 when not timed).
    `turn_versions`: per assistant turn, the (first, last) weight versions of the rollout engine that
    sampled its tokens (empty when the engine did not report them, e.g. SFT chats); asynchronous RL
    measures staleness from them.
    """

    sample_id: str
    token_ids: np.ndarray
    roles: np.ndarray
    group_index: int = 0
    protocol: str = "video_o3"
    videos: list[VideoSpan] = field(default_factory=list)
    tags: list[TagTokens] = field(default_factory=list)
    assistant_texts: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    turn_errors: list[str] = field(default_factory=list)
    exceeded: bool = False
    exceeded_reason: str | None = None
    logprobs: np.ndarray | None = None
    seconds: float = 0.0
    turn_versions: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def turns(self) -> int:
        return len(self.assistant_texts)

    @property
    def oldest_version(self) -> int | None:
        """The oldest weight version that sampled any of its tokens (None when not recorded)."""
        return min(first for first, _ in self.turn_versions) if self.turn_versions else None

    @property
    def n_errors(self) -> int:
        return len(self.turn_errors)

    @property
    def n_vision_tokens(self) -> int:
        return sum(v.n_vision_tokens for v in self.videos)

    def loss_mask(self) -> np.ndarray:
        """bool [N]: assistant tokens (not ASSISTANT_UNTRAINED ones), all False when exceeded."""
        if self.exceeded:
            return np.zeros(len(self.token_ids), dtype=bool)
        return self.roles == Role.ASSISTANT

    def tag_spans(self, tag: str) -> list[TagTokens]:
        return [span for span in self.tags if span.tag == tag]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name, dtype in _PACKED:
            state[name] = pack_array(state[name], dtype)
        return state

    def __setstate__(self, state: dict) -> None:
        for name, dtype in _PACKED:
            state[name] = unpack_array(state.get(name), dtype)
        self.__dict__.update(state)
