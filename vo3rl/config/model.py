"""Recipe keys of the `tiny_model` stage (`model.tiny:`): widths and depths of a random Qwen2.5-VL."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TinyModelConfig:
    """Widths and depths of the tiny model. `text_hidden / text_heads` is the head dim; the
    multimodal RoPE sections (temporal, height, width) must add up to half of it. vLLM's CPU attention
    needs a head dim in {32, 64, 80, …}."""

    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 2  # head_dim 32: the smallest vLLM's CPU attention supports
    text_kv_heads: int = 1
    text_intermediate: int = 256
    mrope_section: list[int] = field(default_factory=lambda: [4, 6, 6])
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 128
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 32768
    seed: int = 0

    def validate(self) -> None:
        if self.text_hidden % self.text_heads:
            raise ValueError(f"text_hidden {self.text_hidden} is not a multiple of text_heads {self.text_heads}")
        half_head = self.text_hidden // self.text_heads // 2
        if sum(self.mrope_section) != half_head:
            raise ValueError(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {half_head}")
        if self.text_heads % self.text_kv_heads:
            raise ValueError("text_heads must be a multiple of text_kv_heads")
        if self.vision_hidden % self.vision_heads:
            raise ValueError("vision_hidden must be a multiple of vision_heads")
