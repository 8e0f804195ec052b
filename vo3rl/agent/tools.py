"""Tools the agent can call, registered by name, and Video-o3's one tool: the video crop.

A tool takes a validated call plus the sample's video reference and returns an Observation: the
frames to show (a Clip, or none) and the text line that follows them. A recipe can add a tool by
registering a function under a new name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from vo3rl.agent.parse import ParseError, ToolCall, ToolCallParse
from vo3rl.agent.prompts import PromptTemplates, render_clip_observation, render_error
from vo3rl.registry import Registry
from vo3rl.video.budgets import crop_spec
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import Clip, SamplingSpec, VideoError, VideoRef


@dataclass
class Observation:
    """What the agent is shown after a call: `clip` (None for an error) and `text`, the sampling
    line or the error message. `error` names what went wrong."""

    text: str
    clip: Clip | None = None
    error: ParseError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Tool(Protocol):
    def __call__(
        self,
        call: ToolCall,
        ref: VideoRef,
        duration_s: float | None,
        *,
        templates: PromptTemplates,
        cache: DecodeCache | None = None,
        budgets: dict[str, dict] | None = None,
    ) -> Observation: ...


TOOLS: Registry[Tool] = Registry("tool")


def register_tool(name: str) -> Callable[[Tool], Tool]:
    """Decorator: make a tool callable as `name`. Raises ValueError if the name is taken."""
    return TOOLS.register(name)


def get_tool(name: str) -> Tool:
    """The tool registered as `name`. Raises UnknownName (a KeyError) naming the known tools."""
    return TOOLS.get(name)


def tool_names() -> tuple[str, ...]:
    """The registered tool names, sorted."""
    return TOOLS.names()


def error_observation(error: ParseError, templates: PromptTemplates) -> Observation:
    """The user turn that reports a failed call: text only, no video."""
    return Observation(text=render_error(error.message, templates), error=error)


def crop_request(call: ToolCall, budgets: dict[str, dict] | None = None) -> SamplingSpec:
    """The SamplingSpec of a crop: the strategy's preset (with a recipe's per-strategy overrides,
    e.g. a tiny demo's smaller `max_tokens`) over the call's window in seconds."""
    overrides = (budgets or {}).get(call.strategy, {})
    return crop_spec(call.strategy, call.start_s, call.end_s, **overrides)


@register_tool("video_crop")
def video_crop(
    call: ToolCall,
    ref: VideoRef,
    duration_s: float | None,
    *,
    templates: PromptTemplates,
    cache: DecodeCache | None = None,
    budgets: dict[str, dict] | None = None,
) -> Observation:
    """Re-sample the original video inside [call.start_s, call.end_s] with the call's strategy.
    A video that cannot be sampled gives an error observation (kind `video_error`), not an exception.
    `duration_s` is unused here: the parser already clipped the window to the video."""
    try:
        clip = sample_clip(ref, crop_request(call, budgets), cache)
    except VideoError as err:
        return error_observation(ParseError("video_error", f"the segment could not be read ({err.reason})."),
                                 templates)
    return Observation(text=render_clip_observation(clip, templates), clip=clip)


def run_tool_call(
    parsed: ToolCallParse,
    ref: VideoRef,
    duration_s: float | None,
    templates: PromptTemplates,
    cache: DecodeCache | None = None,
    budgets: dict[str, dict] | None = None,
) -> Observation:
    """A parsed call's observation: the error observation if it failed validation, else the tool's."""
    if parsed.call is None:
        error = parsed.error or ParseError("parse_error", "the tool call could not be read.")
        return error_observation(error, templates)
    tool = get_tool(parsed.call.name)
    return tool(parsed.call, ref, duration_s, templates=templates, cache=cache, budgets=budgets)
