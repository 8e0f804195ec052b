"""A greedy `Engine` on a transformers Qwen2.5-VL, for evaluation inside SFT (no vLLM needed).

Positions are the learner's (`vo3rl.model.positions`) and videos are timed as the rollout times them
(`vo3rl.model.video_inputs`), so what this engine generates is what the learner would score. Each turn
prefills the whole context (contexts of the tiny demo are a few hundred tokens), then decodes with a
KV cache.
"""
from __future__ import annotations

import numpy as np
import torch

from vo3rl.agent.loop import STOP_STRINGS, TurnOutput
from vo3rl.model.positions import mrope_positions
from vo3rl.model.video_inputs import VideoMaterialiser


def _pad_runs(ids: np.ndarray, pad_id: int) -> list[int]:
    """Start index of each run of `pad_id`."""
    is_pad = ids == pad_id
    starts = np.flatnonzero(is_pad & ~np.concatenate([[False], is_pad[:-1]]))
    return starts.tolist()


class HFGreedyEngine:
    def __init__(self, model, tokenizer, materialiser: VideoMaterialiser):
        self.model = model
        self.tokenizer = tokenizer
        self.materialiser = materialiser
        self.video_pad = tokenizer.convert_tokens_to_ids("<|video_pad|>")
        self.stop_ids = {tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")}
        self.tokens_per_second = float(model.config.vision_config.tokens_per_second)

    @torch.no_grad()
    def generate(self, context: list[int], clips, max_new_tokens: int, stop: tuple[str, ...] = STOP_STRINGS) -> TurnOutput:
        from transformers import DynamicCache

        self.model.eval()
        device = next(self.model.parameters()).device
        ids = np.asarray(context, dtype=np.int64)
        starts = _pad_runs(ids, self.video_pad)
        if len(starts) != len(clips):
            raise ValueError(f"context has {len(starts)} videos, {len(clips)} clips given")
        videos = self.materialiser.patchify(list(clips))
        placed = [(s, tuple(c.grid_thw), sec) for s, c, sec in zip(starts, clips, videos.second_per_grid if videos else [])]
        positions = torch.from_numpy(mrope_positions(len(ids), placed, self.tokens_per_second))[:, None, :]
        cache = DynamicCache(config=self.model.config)
        kwargs = {} if videos is None else dict(pixel_values_videos=videos.pixel_values.to(device),
                                                video_grid_thw=videos.grid_thw.to(device))
        out = self.model(input_ids=torch.from_numpy(ids)[None].to(device), position_ids=positions.to(device),
                         past_key_values=cache, use_cache=True, logits_to_keep=1, **kwargs)
        next_pos = int(positions.max()) + 1
        generated, logprobs = [], []
        for _ in range(max_new_tokens):
            logits = out.logits[0, -1].float()
            token = int(logits.argmax())
            generated.append(token)
            logprobs.append(float(torch.log_softmax(logits, -1)[token]))
            if token in self.stop_ids:
                break
            tail = self.tokenizer.decode(generated[-8:])
            if any(s in tail for s in stop):
                break
            pos = torch.full((3, 1, 1), next_pos, dtype=torch.long, device=device)
            next_pos += 1
            out = self.model(input_ids=torch.tensor([[token]], device=device), position_ids=pos,
                             past_key_values=out.past_key_values, use_cache=True)
        return TurnOutput(generated, self.tokenizer.decode(generated), logprobs)
