"""The policy forward: hidden states of a Batch, then the LM head only where a target is scored.

Full logits cost [B, L, 151,936] floats; SFT and RL only need the positions that predict a trained
token, typically a small share of a video trajectory (platform.md: ≈5× faster step on the tiny model).
The head runs in chunks of `chunk` positions so the logits of a 32k-token row never sit in memory at once.
Logits, log-softmax and entropies are fp32 whatever the compute dtype (bf16 autocast or FSDP2's bf16).

The mask: with SDPA, the Batch's own (2-D padding or its boolean [R, 1, W, W] mask); with FlexAttention
(`vo3rl.train.attention`), a BlockMask built here, on the model's device, from `Batch.row_layout`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vo3rl.train.batch import Batch
from vo3rl.train.flex_mask import flex_block_mask


@dataclass
class TokenScores:
    """Per scored position, flattened in row-major order of `Batch.target_mask`: `logprobs` of the
    target token and `entropy` of the predictive distribution (nats; None when not asked for);
    `rows`, `positions` say where each came from (trajectory index in the micro-batch, token position
    in the trajectory: the same whether the rows were padded or packed)."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None
    rows: torch.Tensor
    positions: torch.Tensor


def head_scores(hidden, rows, positions, head, targets, with_entropy: bool, chunk: int, anchor=None):
    """(log-probs, entropies or an empty tensor) of `targets` at `hidden[rows, positions]` (hidden
    [B, L, H]), with `head` (hidden -> logits over the vocabulary) applied `chunk` positions at a time.
    `anchor`: a zero-valued scalar added to the log-probs so backward reaches parameters the selection
    may not (every backend adds 0 x the hidden states' sum, so an empty selection still backpropagates)."""
    selected = hidden[rows, positions]
    logprobs, entropies = [], []
    for start in range(0, len(selected), chunk):
        logits = head(selected[start : start + chunk]).float()
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
    anchor = 0.0 * hidden.sum() + (0.0 if anchor is None else anchor)
    logprobs = torch.cat(logprobs) + anchor if logprobs else anchor.reshape(1)[:0]
    entropy = torch.cat(entropies) if entropies else logprobs.detach()[:0]
    return logprobs, entropy


def _score(model, input_ids, attention_mask, position_ids, pixel_values_videos, video_grid_thw, rows,
           positions, targets, with_entropy: bool, chunk: int):
    """(log-probs, entropies or an empty tensor) of `targets` at model (rows, positions). Installed on
    the model as `vo3rl_score` so FSDP2 gathers the root's parameters (embedding, head) around it."""
    out = model.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      pixel_values_videos=pixel_values_videos, video_grid_thw=video_grid_thw, use_cache=False)
    anchor = None
    if pixel_values_videos is None and torch.is_grad_enabled():
        # A trainable vision tower unused by this batch still gets (zero) gradients, so every rank
        # reduces the same set of parameters.
        visual = [p for p in model.model.visual.parameters() if p.requires_grad]
        if visual:
            anchor = 0.0 * sum(p.sum() for p in visual)
    return head_scores(out.last_hidden_state, rows, positions, model.lm_head, targets, with_entropy, chunk, anchor)


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
    layout = batch.row_layout
    if getattr(model, "vo3rl_attention", "sdpa") == "flex":
        attention = {"full_attention": flex_block_mask(layout, batch.input_ids.device)}
    else:
        attention = batch.attention_mask
        if attention.dim() == 2 and layout.needs_custom_mask:
            raise ValueError("this batch needs a TDAM or packing mask: build it with dense=True for SDPA")
        if attention.dim() == 2 and bool(attention.all()):
            attention = None  # no padding: the causal fast path of SDPA
    videos = batch.videos
    rows, positions = batch.target_mask.nonzero(as_tuple=True)
    model_rows, model_positions = layout.index(rows, positions)
    logprobs, entropy = model.vo3rl_score(
        batch.input_ids, attention, batch.position_ids,
        None if videos is None else videos.pixel_values, None if videos is None else videos.grid_thw,
        model_rows, model_positions, batch.targets[rows, positions], with_entropy, chunk)
    return TokenScores(logprobs, entropy if with_entropy else None, rows, positions)
