"""The policy forward: hidden states of a Batch, then the LM head only where a target is scored.

Full logits cost [B, L, 151,936] floats; SFT and RL only need the positions that predict a trained
token, typically a small share of a video trajectory (platform.md: ≈5× faster step on the tiny model).
The head runs in chunks of `chunk` positions so the logits of a 32k-token row never sit in memory at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vo3rl.train.batch import Batch


@dataclass
class TokenScores:
    """Per scored position, flattened in row-major order of `Batch.target_mask`: `logprobs` of the
    target token and `entropy` of the predictive distribution (nats; None when not asked for);
    `rows`, `positions` say where each came from."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None
    rows: torch.Tensor
    positions: torch.Tensor


def _score(model, input_ids, attention_mask, position_ids, pixel_values_videos, video_grid_thw, rows,
           positions, targets, with_entropy: bool, chunk: int):
    """(log-probs, entropies or an empty tensor) of `targets` at (rows, positions). Installed on the
    model as `vo3rl_score` so FSDP2 gathers the root's parameters (embedding, head) around it."""
    out = model.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      pixel_values_videos=pixel_values_videos, video_grid_thw=video_grid_thw, use_cache=False)
    selected = out.last_hidden_state[rows, positions]
    logprobs, entropies = [], []
    for start in range(0, len(selected), chunk):
        logits = model.lm_head(selected[start : start + chunk]).float()
        chunk_targets = targets[start : start + chunk]
        if with_entropy:
            # One log-softmax serves both: the full-vocabulary passes are the cost of a tiny model's step.
            log_p = torch.log_softmax(logits, dim=-1)
            logprobs.append(log_p.gather(-1, chunk_targets.unsqueeze(-1)).squeeze(-1))
            with torch.no_grad():  # a metric, never trained on: no graph over the vocabulary
                entropies.append(-(log_p.exp() * log_p).sum(-1))
        else:
            # cross_entropy fuses log-softmax and the gather; its backward is one pass (softmax − one-hot).
            logprobs.append(-torch.nn.functional.cross_entropy(logits, chunk_targets, reduction="none"))
    # An empty selection still ties the result to the graph, so backward reaches every rank's hooks.
    anchor = 0.0 * out.last_hidden_state.sum()
    if pixel_values_videos is None and torch.is_grad_enabled():
        # A trainable vision tower unused by this batch still gets (zero) gradients, so every rank
        # reduces the same set of parameters.
        visual = [p for p in model.model.visual.parameters() if p.requires_grad]
        if visual:
            anchor = anchor + 0.0 * sum(p.sum() for p in visual)
    logprobs = torch.cat(logprobs) + anchor if logprobs else anchor.reshape(1)[:0]
    entropy = torch.cat(entropies) if entropies else logprobs.detach()[:0]
    return logprobs, entropy


def install_scoring(model) -> None:
    """Bind `_score` as `model.vo3rl_score`, registered as an FSDP2 forward method when sharded."""
    import types

    from torch.distributed.fsdp import register_fsdp_forward_method

    model.vo3rl_score = types.MethodType(_score, model)
    register_fsdp_forward_method(model, "vo3rl_score")


def score_targets(model, batch: Batch, with_entropy: bool = False, chunk: int = 2048) -> TokenScores:
    """Log-probs (fp32) of each scored target of `batch`, and optionally the entropy, with the LM head
    applied only at scored positions."""
    if not hasattr(model, "vo3rl_score"):
        install_scoring(model)
    attention = batch.attention_mask
    if not batch.tdam and attention.dim() == 2 and bool(attention.all()):
        attention = None  # no padding: the causal fast path of SDPA
    videos = batch.videos
    rows, positions = batch.target_mask.nonzero(as_tuple=True)
    logprobs, entropy = model.vo3rl_score(
        batch.input_ids, attention, batch.position_ids,
        None if videos is None else videos.pixel_values, None if videos is None else videos.grid_thw,
        rows, positions, batch.targets[rows, positions], with_entropy, chunk)
    return TokenScores(logprobs, entropy if with_entropy else None, rows, positions)
