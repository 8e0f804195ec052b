"""Which attention the policy's text decoder runs: SDPA (boolean masks) or FlexAttention (block masks).

`learner.attention`: "auto" is flex on CUDA and sdpa elsewhere; "sdpa" and "flex" force one. Flex is
installed by registering one function in transformers' `AttentionInterface` and pointing only the text
config at it; the vision tower keeps SDPA (its attention is per-window, without our masks). The forward
(`vo3rl.train.forward`) then hands the text model a ready mask mapping `{"full_attention": BlockMask}`,
which Qwen2.5-VL passes to every decoder layer untouched.

FlexAttention on CPU (torch 2.13): the forward runs eagerly (an unfused reference that builds the full
score matrix; fine for tests and log-probs), but it has no backward, so a train step with flex on CPU
stops with a one-line error. On CUDA the kernel is `torch.compile`d once per process (the first call of
each new shape compiles; from the second length on, dynamo compiles it for dynamic shapes).
"""
from __future__ import annotations

import torch

ATTENTION_NAME = "vo3rl_flex"  # the name registered in transformers' AttentionInterface
_compiled = {}


class FlexOnCPUTraining(RuntimeError):
    """A train step asked FlexAttention for a backward on CPU, which torch does not implement."""


def resolve_attention(choice: str, device: torch.device) -> str:
    """"sdpa" or "flex" for `learner.attention` = `choice` on `device`."""
    if choice == "auto":
        return "flex" if device.type == "cuda" else "sdpa"
    if choice not in ("sdpa", "flex"):
        raise ValueError(f"learner.attention = {choice!r}: must be one of auto, sdpa, flex")
    return choice


def _flex_kernel(device_type: str):
    from torch.nn.attention.flex_attention import flex_attention

    if device_type != "cuda":
        return flex_attention
    if "cuda" not in _compiled:
        _compiled["cuda"] = torch.compile(flex_attention)
    return _compiled["cuda"]


def flex_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention signature: [B, H, L, D] query/key/value -> ([B, L, H, D], None). A
    BlockMask runs FlexAttention; anything else (a padding call's plain mask) goes to SDPA."""
    from torch.nn.attention.flex_attention import BlockMask
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not isinstance(attention_mask, BlockMask):
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    if dropout:
        raise ValueError("FlexAttention here has no attention dropout; set the model's attention_dropout to 0")
    if query.device.type == "cpu" and torch.is_grad_enabled() and query.requires_grad:
        raise FlexOnCPUTraining("learner.attention=flex cannot train on CPU: torch's FlexAttention has no CPU "
                                "backward; use learner.attention=sdpa (or auto) there")
    out = _flex_kernel(query.device.type)(query, key, value, block_mask=attention_mask, scale=scaling,
                                          enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


def install_attention(model, choice: str, device: torch.device) -> str:
    """Set the text decoder of a Qwen2.5-VL ForConditionalGeneration to the resolved attention (again
    at any time: a benchmark switches it in place); returns it ("sdpa" or "flex") and records it as
    `model.vo3rl_attention` for the forward. The Learner's batches must match: `dense` masks for SDPA."""
    resolved = resolve_attention(choice, device)
    if resolved == "flex":
        from transformers import AttentionInterface

        AttentionInterface.register(ATTENTION_NAME, flex_attention_forward)
    model.model.language_model.config._attn_implementation = ATTENTION_NAME if resolved == "flex" else "sdpa"
    model.vo3rl_attention = resolved
    return resolved
