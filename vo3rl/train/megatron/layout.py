"""Which learner rank holds which part of the work under tensor parallelism (pure; no megatron import).

megatron-core orders ranks "tp-cp-ep-dp-pp": tensor-parallel ranks are neighbours, so with pp = cp = 1
rank r is tensor-parallel rank r % tp of data-parallel replica r // tp. The ranks of one replica must
see the same micro-batches (they split each matrix, not the batch); `vo3rl.workers.learner` deals the
batch by replica. `parallel.init_parallel_state` checks megatron agrees with this.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankLayout:
    """Rank `rank` of `world` learner ranks, `tp` ranks per tensor-parallel group."""

    rank: int
    world: int
    tp: int = 1

    @property
    def tp_rank(self) -> int:
        return self.rank % self.tp

    @property
    def dp_rank(self) -> int:
        return self.rank // self.tp

    @property
    def dp_size(self) -> int:
        return self.world // self.tp


def replica_of_ranks(world: int, tp: int) -> list[int]:
    """The data-parallel replica (the batch share) of each of `world` ranks, in rank order."""
    return [RankLayout(rank, world, tp).dp_rank for rank in range(world)]


def degree_problem(tp: int, text_config: dict) -> str | None:
    """Why `tp` tensor-parallel ranks cannot split the language model of `text_config` (its
    config.json's text part), or None: tp must divide the attention heads and the key/value heads
    (each rank keeps whole query groups)."""
    heads = int(text_config["num_attention_heads"])
    kv_heads = int(text_config.get("num_key_value_heads") or heads)
    for name, count in (("num_attention_heads", heads), ("num_key_value_heads", kv_heads)):
        if count % tp:
            return (f"learner.megatron.tensor_parallel = {tp}: must divide the model's {name} = {count} "
                    "(each tensor-parallel rank holds whole attention heads)")
    return None


def model_degree_problem(model_path, tp: int) -> str | None:
    """`degree_problem` for the model folder `model_path` (its config.json), read before any rank
    starts; None when the folder has no config.json yet (the learner checks again when it loads)."""
    import json
    from pathlib import Path

    path = Path(model_path) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    return degree_problem(tp, config.get("text_config") or config)
