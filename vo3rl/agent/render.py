"""Build a Trajectory in the Qwen chat layout, turn by turn (rollout) or from an SFT example.

Layout: `<|im_start|>role\\n…<|im_end|>\\n` per message; a video in a user turn is
`<|vision_start|>` + n_vision_tokens × `<|video_pad|>` + `<|vision_end|>`, already expanded, as the
learner sees it. Each chunk (prompt, assistant turn, observation) is tokenized on its own, exactly
as a rollout concatenates the engine's prompt and generated ids, so SFT and RL contexts agree token
for token. Text between special tokens is encoded in one piece, as whole-string tokenization would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vo3rl.agent.parse import (
    MIN_SEGMENT_S,
    NO_ACTION,
    STRATEGIES,
    ToolCallParse,
    TurnKind,
    classify_turn,
    parse_tool_call,
)
from vo3rl.agent.prompts import (
    PromptTemplates,
    render_clip_observation,
    render_question,
    system_prompt,
)
from vo3rl.agent.tools import Observation, error_observation, run_tool_call
from vo3rl.agent.trajectory import Role, TagTokens, Trajectory, VideoSpan, tag_token_spans
from vo3rl.data.schema import Sample
from vo3rl.video.types import Clip


class TokenBytes:
    """The exact bytes of each token id (byte-level BPE), so text offsets map to tokens."""

    def __init__(self, tokenizer):
        from transformers.convert_slow_tokenizer import bytes_to_unicode

        self._tokenizer = tokenizer
        self._byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
        self.special_ids = frozenset(tokenizer.added_tokens_decoder)

    def __call__(self, ids: list[int]) -> list[bytes]:
        pieces = self._tokenizer.convert_ids_to_tokens(list(ids))
        out = []
        for token_id, piece in zip(ids, pieces):
            piece = piece or ""
            if token_id in self.special_ids or any(ch not in self._byte_of for ch in piece):
                out.append(piece.encode("utf-8"))
            else:
                out.append(bytes(self._byte_of[ch] for ch in piece))
        return out


@dataclass(frozen=True)
class TurnStep:
    """What an assistant turn asked for: `kind`, and for a tool call its validation result."""

    kind: TurnKind
    tool: ToolCallParse | None = None


def first_user_text(sample: Sample, clip: Clip | None, templates: PromptTemplates, protocol: str) -> str:
    """The text of the first user turn after the whole video: for video_o3 the global view's sampling
    line, then the question."""
    times = list(clip.timestamps_s) if clip is not None else None
    text = render_question(sample, templates, protocol, times)
    if clip is not None and protocol == "video_o3":
        text = render_clip_observation(clip, templates) + "\n" + text
    return text


class TrajectoryBuilder:
    """Appends prompt, assistant and observation chunks; `build()` returns the Trajectory."""

    def __init__(self, tokenizer, sample: Sample, templates: PromptTemplates | None = None,
                 protocol: str = "video_o3", group_index: int = 0, token_bytes: TokenBytes | None = None,
                 strategies: tuple[str, ...] = STRATEGIES, min_segment_s: float = MIN_SEGMENT_S):
        self.tokenizer = tokenizer
        self.strategies, self.min_segment_s = tuple(strategies), min_segment_s
        self.sample = sample
        self.templates = templates or PromptTemplates()
        self.protocol = protocol
        self.group_index = group_index
        self._token_bytes = token_bytes or TokenBytes(tokenizer)
        ids = tokenizer.convert_tokens_to_ids
        self.im_start, self.im_end = ids("<|im_start|>"), ids("<|im_end|>")
        self.vision_start, self.vision_end, self.video_pad = (
            ids("<|vision_start|>"), ids("<|vision_end|>"), ids("<|video_pad|>"))
        self._ids: list[int] = []
        self._roles: list[int] = []
        self._logprobs: list[float] = []
        self._has_logprobs = False
        self._videos: list[VideoSpan] = []
        self._tags: list[TagTokens] = []
        self._texts: list[str] = []
        self._calls = []
        self._errors: list[str] = []
        self._versions: list[tuple[int, int]] = []
        self._user_turns = 0

    # -- low-level appends ------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def _extend(self, ids: list[int], role: Role, logprobs=None) -> None:
        self._ids.extend(ids)
        self._roles.extend([int(role)] * len(ids))
        self._logprobs.extend(logprobs if logprobs is not None else [math.nan] * len(ids))

    def _video(self, clip: Clip, role: Role) -> None:
        self._extend([self.vision_start], role)
        start = len(self._ids)
        self._extend([self.video_pad] * clip.n_vision_tokens, role)
        self._videos.append(VideoSpan(self.sample.video, clip.spec, start, len(self._ids), clip.n_vision_tokens,
                                      clip.grid_thw, len(clip.frames), self._user_turns))
        self._extend([self.vision_end], role)

    def _user(self, clip: Clip | None, text: str, role: Role) -> None:
        self._extend([self.im_start] + self._encode("user\n"), role)
        if clip is not None:
            self._video(clip, role)
        self._extend(self._encode(text) + [self.im_end] + self._encode("\n"), role)
        self._extend([self.im_start] + self._encode("assistant\n"), role)
        self._user_turns += 1

    # -- the three chunk kinds --------------------------------------------------------------
    def add_prompt(self, clip: Clip | None = None, text: str | None = None, system: str | None = None) -> None:
        """System message, then the first user turn: the whole video (`clip`) and the question,
        rendered from the templates unless `text` is given; ends with the assistant header."""
        if self._ids:
            raise RuntimeError("add_prompt must come first")
        system = system if system is not None else system_prompt(self.templates, self.protocol)
        self._extend([self.im_start] + self._encode("system\n" + system) + [self.im_end] + self._encode("\n"),
                     Role.PROMPT)
        if text is None:
            text = first_user_text(self.sample, clip, self.templates, self.protocol)
        self._user(clip, text, Role.PROMPT)

    def add_assistant(self, content: str | list[int], logprobs: list[float] | None = None,
                      close: bool | None = None, versions: tuple[int, int] | None = None,
                      trained: bool = True) -> TurnStep:
        """One assistant turn: text (SFT; closed with `<|im_end|>` unless close=False) or generated ids
        as the engine returned them, with their log-probs and the (first, last) weight versions that
        sampled them. Returns what the turn asked for; a tool call is validated against the sample's
        duration and recorded. `trained=False` (SFT's flagged turns) gives its tokens the role
        ASSISTANT_UNTRAINED: in the context, out of the loss; tags, texts and calls are kept as usual."""
        if versions is not None:
            self._versions.append((int(versions[0]), int(versions[1])))
        if isinstance(content, str):
            ids = self._encode(content) + ([self.im_end] if close is not False else [])
        else:
            ids = [int(i) for i in content]
        if logprobs is not None:
            if len(logprobs) != len(ids):
                raise ValueError(f"{len(logprobs)} log-probs for {len(ids)} generated tokens")
            self._has_logprobs = True
        offset = len(self._ids)
        role = Role.ASSISTANT if trained else Role.ASSISTANT_UNTRAINED
        self._extend(ids, role, None if logprobs is None else [float(x) for x in logprobs])
        pieces = self._token_bytes(ids)
        turn = len(self._texts)
        self._tags.extend(tag_token_spans(pieces, turn, offset))
        text = b"".join(p for i, p in zip(ids, pieces) if i not in self._token_bytes.special_ids)
        text = text.decode("utf-8", errors="replace")
        self._texts.append(text)
        kind = classify_turn(text)
        if kind == TurnKind.TOOL_CALL and self.protocol == "open_o3":
            kind = TurnKind.NEITHER  # Open-o3 has no tools: a <grounding> there is just text
        if kind == TurnKind.TOOL_CALL:
            parsed = parse_tool_call(text, self.sample.duration_s, self.strategies, self.min_segment_s)
            if parsed.ok:
                self._calls.append(parsed.call)
            else:
                self._errors.append(parsed.error.kind)
            return TurnStep(kind, parsed)
        if kind == TurnKind.NEITHER:
            self._errors.append(NO_ACTION.kind)
        return TurnStep(kind)

    def add_observation(self, observation: Observation | Clip | str, force_answer: bool = False) -> None:
        """The user turn after a tool call: a crop (Clip or Observation with a clip) with its sampling
        line, or an error text. Closes the previous assistant turn with `<|im_end|>` if the engine
        stopped before writing one (that token is not trained). `force_answer` appends the
        last-turn instruction."""
        if isinstance(observation, str):
            clip, text = None, observation
        elif isinstance(observation, Clip):
            clip, text = observation, render_clip_observation(observation, self.templates)
        else:
            clip, text = observation.clip, observation.text
            if observation.error is not None and observation.error.kind == "video_error":
                self._errors.append(observation.error.kind)
        closing = [] if self._ids and self._ids[-1] == self.im_end else [self.im_end]
        self._extend(closing + self._encode("\n"), Role.OBSERVATION)
        self._user(clip, text + (self.templates.force_answer if force_answer else ""), Role.OBSERVATION)

    # -- result -----------------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        return len(self._ids)

    @property
    def n_videos(self) -> int:
        return len(self._videos)

    def build(self, exceeded: bool = False, exceeded_reason: str | None = None) -> Trajectory:
        return Trajectory(
            sample_id=self.sample.id,
            token_ids=np.asarray(self._ids, dtype=np.int32),
            roles=np.asarray(self._roles, dtype=np.uint8),
            group_index=self.group_index,
            protocol=self.protocol,
            videos=list(self._videos),
            tags=list(self._tags),
            assistant_texts=list(self._texts),
            tool_calls=list(self._calls),
            turn_errors=list(self._errors),
            exceeded=exceeded,
            exceeded_reason=exceeded_reason,
            logprobs=np.asarray(self._logprobs, dtype=np.float32) if self._has_logprobs else None,
            turn_versions=list(self._versions) if len(self._versions) == len(self._texts) else [],
        )


def videoless_observation(step: TurnStep | None, sample: Sample, templates: PromptTemplates) -> Observation | None:
    """What the rollout (vo3rl.agent.loop) shows after an assistant turn that adds no video: for a
    refused tool call the tool's error (through the rollout's own `run_tool_call`, which never reads
    the video for a refused call), for a turn with neither call nor answer the no-action error; None
    after anything else (a valid call shows its crop, an answer ends the episode)."""
    if step is None:
        return None
    if step.kind == TurnKind.TOOL_CALL and step.tool is not None and not step.tool.ok:
        return run_tool_call(step.tool, sample.video, sample.duration_s, templates)
    if step.kind == TurnKind.NEITHER:
        return error_observation(NO_ACTION, templates)
    return None


def from_sft_example(example, tokenizer, clip_for: Callable, templates: PromptTemplates | None = None,
                     token_bytes: TokenBytes | None = None) -> Trajectory:
    """The Trajectory of a `vo3rl.data.chat.SFTExample`. `clip_for(video_use)` returns the Clip of a
    turn's VideoUse (the caller samples it, with its cache). A user turn whose text is None is
    rendered from the templates: the question for the first, the sampling line for one with a
    video, and for one without a video (video_o3) the error the rollout shows after the previous
    assistant turn (`videoless_observation`; after any other turn it is a bad example). An
    assistant turn with `trained=False` is in the context but out of the loss."""
    builder = TrajectoryBuilder(tokenizer, example.sample, templates, example.protocol, token_bytes=token_bytes)
    if not example.turns or example.turns[0].role != "user":
        raise ValueError(f"example {example.sample.id!r}: the first turn must be a user turn")
    step = None
    for index, turn in enumerate(example.turns):
        if turn.role == "assistant":
            step = builder.add_assistant(turn.text, trained=turn.trained)
            continue
        clip = clip_for(turn.video) if turn.video is not None else None
        if index == 0:
            builder.add_prompt(clip, turn.text)
        elif turn.text is not None:
            builder.add_observation(Observation(text=turn.text, clip=clip))
        elif clip is not None:
            builder.add_observation(clip)
        elif example.protocol == "video_o3" and (
                error := videoless_observation(step, example.sample, builder.templates)) is not None:
            builder.add_observation(error)
        else:
            raise ValueError(f"example {example.sample.id!r}: user turn {index} has neither text nor video,"
                             " and the turn before it is not one the tool answers with an error")
        step = None  # one observation per assistant turn
    return builder.build()
