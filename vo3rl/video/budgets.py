"""The papers' sampling budgets as named presets (methods.md sections 1 and 4).

Video-o3: the global view is the whole video at 2 fps, at most 768 frames and 16,384 vision tokens
(floor 512); the crop tool re-samples a window at 2 fps with 2,048 / 4,096 / 6,144 tokens for
coarse / medium / fine (floor 512), at most 768 tokens per 2-frame patch.
Open-o3 Video: 16 frames spread uniformly, each at most 128*28*28 px, i.e. 128 tokens per patch.
"""
from __future__ import annotations

from dataclasses import fields, replace

from vo3rl.config.names import CROP_STRATEGIES
from vo3rl.video.types import SamplingSpec

_PRESETS: dict[str, SamplingSpec] = {
    "global": SamplingSpec(fps=2.0, max_frames=768, max_tokens=16384, min_tokens=512, max_tokens_per_patch=768),
    "coarse": SamplingSpec(fps=2.0, max_frames=768, max_tokens=2048, min_tokens=512, max_tokens_per_patch=768),
    "medium": SamplingSpec(fps=2.0, max_frames=768, max_tokens=4096, min_tokens=512, max_tokens_per_patch=768),
    "fine": SamplingSpec(fps=2.0, max_frames=768, max_tokens=6144, min_tokens=512, max_tokens_per_patch=768),
    # 16 frames -> 8 patches x 128 tokens; the floor stays under the cap so small frames are not blown up.
    "open_o3": SamplingSpec(
        num_frames=16, max_frames=16, max_tokens=16 // 2 * 128, min_tokens=0, max_tokens_per_patch=128
    ),
}
PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def preset(name: str, **overrides) -> SamplingSpec:
    """The named SamplingSpec ("global", "coarse", "medium", "fine", "open_o3").

    `overrides` replace fields (e.g. a tiny demo's smaller `max_tokens`). Raises ValueError for an
    unknown name or field.
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown sampling preset {name!r}; known: {', '.join(PRESET_NAMES)}")
    known = {f.name for f in fields(SamplingSpec)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown SamplingSpec field(s) {unknown}; known: {sorted(known)}")
    return replace(_PRESETS[name], **overrides)


def crop_spec(strategy: str, start_s: float, end_s: float, **overrides) -> SamplingSpec:
    """The Video-o3 crop tool's request: `strategy` (coarse|medium|fine) over [start_s, end_s] seconds
    of the original timeline. Raises ValueError for another strategy name."""
    if strategy not in CROP_STRATEGIES:
        raise ValueError(f"unknown sampling_strategy {strategy!r}; expected one of {', '.join(CROP_STRATEGIES)}")
    return preset(strategy, **overrides).window(start_s, end_s)


_INT_SPEC_FIELDS = ("max_frames", "max_tokens", "min_tokens", "max_tokens_per_patch", "min_frames", "num_frames")


def resolved_presets(overrides: dict[str, dict]) -> dict[str, SamplingSpec]:
    """Every sampling preset with a recipe's `video.presets` overrides applied (name -> SamplingSpec).
    Raises ValueError for an unknown preset or field, or a value that is not a number."""
    unknown = sorted(set(overrides) - set(PRESET_NAMES))
    if unknown:
        raise ValueError(f"unknown preset(s) {unknown}; known: {', '.join(PRESET_NAMES)}")
    for name, fields_of_preset in overrides.items():
        for key, value in fields_of_preset.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{name}.{key}: expected a number, got {value!r}")
            if key in _INT_SPEC_FIELDS and value is not None and value != int(value):
                raise ValueError(f"{name}.{key}: expected a whole number, got {value!r}")
    return {name: preset(name, **overrides.get(name, {})) for name in PRESET_NAMES}
