"""Recipe keys of the `tiny_model` stage (`model.tiny:`): widths and depths of a random Qwen2.5-VL."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

SAVE_DTYPES = ("float32", "bfloat16")


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
    rms_norm_eps: float = 1e-5
    vision_tokens_per_second: int = 4  # temporal RoPE positions per second of video (the 7B: 2)
    vocab_size: int = 151936  # rows of the embedding table (the 7B pads to 152064); >= the tokenizer's 151665
    vision_fullatt_blocks: Optional[list[int]] = None  # vision blocks with full attention; None: the last one
    save_dtype: str = "float32"  # the dtype the weights are written in: float32 or bfloat16 (a real checkpoint's)
    max_shard_mb: int = 0  # > 0: weights split into safetensors shards of at most this many MB, with an index
    seed: int = 0

    def fullatt_blocks(self) -> list[int]:
        return list(self.vision_fullatt_blocks) if self.vision_fullatt_blocks is not None else [self.vision_depth - 1]

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
        if self.vocab_size < 151665:
            raise ValueError(f"vocab_size = {self.vocab_size}: must be >= 151665 (the tokenizer's ids)")
        if any(not 0 <= b < self.vision_depth for b in self.fullatt_blocks()):
            raise ValueError(f"vision_fullatt_blocks = {self.vision_fullatt_blocks}: must be block indices in "
                             f"[0, {self.vision_depth})")
        if self.save_dtype not in SAVE_DTYPES:
            raise ValueError(f"save_dtype = {self.save_dtype!r}: must be one of {', '.join(SAVE_DTYPES)}")
        if self.rms_norm_eps <= 0 or self.vision_tokens_per_second < 1:
            raise ValueError(f"rms_norm_eps = {self.rms_norm_eps} must be > 0 and vision_tokens_per_second = "
                             f"{self.vision_tokens_per_second} >= 1")
        if self.max_shard_mb < 0:
            raise ValueError(f"max_shard_mb = {self.max_shard_mb}: must be >= 0 (0: one file)")
