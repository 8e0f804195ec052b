"""Qwen2.5-VL for the Megatron learner: the language decoder is a megatron-core `GPTModel` (local,
non-Transformer-Engine layer spec: RMSNorm, SwiGLU, q/k/v bias and no other bias, MRoPE with the
config's `mrope_section` and `rope_theta`, tied or untied embeddings as the config says), tensor
parallel over the current process group; the vision tower is transformers' own module, replicated
whole on every rank (it is small next to the decoder), its output replacing the `<|video_pad|>`
embeddings before the decoder runs.

The forward scores only the positions that carry a target, as the FSDP2 learner does
(`vo3rl.train.forward.head_scores`): the vocab-parallel head's logits of those positions are gathered
over the tensor-parallel group (each rank then holds the full vocabulary's logits; simple, and exact),
the vocabulary padding is cut off, and the log-softmax runs on the full row.

Attention masks follow megatron's convention, True = masked out, one bool [R, 1, W, W] per micro-batch
(attention type "arbitrary"): the inverse of the SDPA boolean mask of the batch's rows
(`vo3rl.train.masks.dense_mask`: causal, padding, TDAM blocks, packed trajectories), which the SDPA path
of FSDP2 applies too.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from vo3rl.train.batch import Batch
from vo3rl.train.forward import TokenScores, head_scores
from vo3rl.train.megatron import cpu_patches  # noqa: F401  (the CPU patches, before any model is built)
from vo3rl.train.megatron.weights import TextShape, padded_vocab
from vo3rl.train.masks import dense_mask

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*(Apex|Transformer Engine).*not installed")
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.enums import AttnMaskType
    from megatron.core.transformer.transformer_config import TransformerConfig


def _rope(text: dict) -> tuple[float, list[int]]:
    """(rope_theta, mrope_section) of a Qwen2.5-VL text config (transformers 5's `rope_parameters`, or
    the older `rope_theta` + `rope_scaling`). Raises ValueError on a RoPE variant other than MRoPE."""
    rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
    kind = rope.get("rope_type") or rope.get("type") or "default"
    if kind not in ("default", "mrope") or "mrope_section" not in rope:
        raise ValueError(f"the Megatron learner supports Qwen2.5-VL's plain MRoPE, not rope {rope!r}")
    return float(rope.get("rope_theta", text.get("rope_theta", 10000.0))), list(rope["mrope_section"])


def transformer_config(config: dict, tp: int, grad_ckpt: bool = False) -> TransformerConfig:
    """megatron's TransformerConfig of a Qwen2.5-VL config.json (dict); fp32 parameters, every
    fusion off (they are CUDA kernels), `grad_ckpt`: recompute each layer in backward."""
    text = config.get("text_config") or config
    shape = TextShape.from_config(config)
    _, mrope_section = _rope(text)
    recompute = dict(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=1) if grad_ckpt else {}
    return TransformerConfig(
        num_layers=int(text["num_hidden_layers"]), hidden_size=int(text["hidden_size"]),
        num_attention_heads=shape.heads, num_query_groups=shape.kv_heads, kv_channels=shape.head_dim,
        ffn_hidden_size=int(text["intermediate_size"]), normalization="RMSNorm",
        layernorm_epsilon=float(text.get("rms_norm_eps", 1e-6)), add_bias_linear=False, add_qkv_bias=True,
        gated_linear_unit=True, activation_func=F.silu, hidden_dropout=0.0,
        attention_dropout=float(text.get("attention_dropout", 0.0)), mrope_section=mrope_section,
        tensor_model_parallel_size=tp, params_dtype=torch.float32, use_cpu_initialization=True,
        perform_initialization=False,  # every weight is loaded from the HF checkpoint
        bias_activation_fusion=False, masked_softmax_fusion=False, persist_layer_norm=False,
        bias_dropout_fusion=False, apply_rope_fusion=False, gradient_accumulation_fusion=False,
        attention_softmax_in_fp32=True, **recompute)


def build_language_model(config: dict, tp: int, grad_ckpt: bool = False) -> GPTModel:
    """The GPTModel of a Qwen2.5-VL config.json (weights uninitialised: load them)."""
    text = config.get("text_config") or config
    shape = TextShape.from_config(config)
    rope_theta, _ = _rope(text)
    spec = get_gpt_layer_local_spec(normalization="RMSNorm")
    spec.submodules.self_attention.params["attn_mask_type"] = AttnMaskType.arbitrary  # TDAM's masks
    return GPTModel(transformer_config(config, tp, grad_ckpt), spec, vocab_size=padded_vocab(shape.vocab, tp),
                    max_sequence_length=int(text.get("max_position_embeddings", 32768)),
                    position_embedding_type="mrope", rotary_base=rope_theta,
                    share_embeddings_and_output_weights=shape.tied, parallel_output=True)


class MegatronPolicy(torch.nn.Module):
    """`language` (GPTModel) and `visual` (HF's vision tower); `video_token_id` marks the embeddings
    the tower's output replaces; `vocab` real vocabulary rows (the rest is padding)."""

    def __init__(self, language: GPTModel, visual: torch.nn.Module, video_token_id: int, vocab: int):
        super().__init__()
        self.language = language
        self.visual = visual
        self.video_token_id = video_token_id
        self.vocab = vocab

    def hidden_states(self, batch: Batch) -> torch.Tensor:
        """Final-norm hidden states [R, W, H] of `batch`'s model rows."""
        language = self.language
        embeddings = language.embedding(input_ids=batch.input_ids, position_ids=None).transpose(0, 1)  # [B, L, H]
        if batch.videos is not None:
            videos = self.visual(batch.videos.pixel_values.type(self.visual.dtype), grid_thw=batch.videos.grid_thw)
            pads = (batch.input_ids == self.video_token_id).unsqueeze(-1)
            embeddings = embeddings.masked_scatter(pads, videos.pooler_output.to(embeddings.dtype))
        rotary = language.rotary_pos_emb(batch.position_ids, language.mrope_section)
        hidden = language.decoder(hidden_states=embeddings.transpose(0, 1).contiguous(),
                                  attention_mask=masked_out(batch), rotary_pos_emb=rotary)
        return hidden.transpose(0, 1)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [N, vocab] of hidden states [N, H]: the vocab-parallel head, gathered, padding cut."""
        weight = self.language.shared_embedding_or_output_weight() if self.language.share_embeddings_and_output_weights else None
        logits, _ = self.language.output_layer(hidden.unsqueeze(1), weight=weight, runtime_gather_output=True)
        return logits.squeeze(1)[:, : self.vocab]


def masked_out(batch: Batch) -> torch.Tensor:
    """megatron's bool [R, 1, W, W] attention mask of `batch` (True = may NOT attend)."""
    allowed = batch.attention_mask if batch.attention_mask.dim() == 4 else dense_mask(batch.row_layout)
    return ~allowed.to(device=batch.input_ids.device, dtype=torch.bool)


def score_targets(policy: MegatronPolicy, batch: Batch, with_entropy: bool = False, chunk: int = 2048) -> TokenScores:
    """Log-probs (fp32) of each scored target of `batch`, and optionally the entropy (nats)."""
    rows, positions = batch.target_mask.nonzero(as_tuple=True)
    model_rows, model_positions = batch.row_layout.index(rows, positions)
    hidden = policy.hidden_states(batch)
    logprobs, entropy = head_scores(hidden, model_rows, model_positions, policy.head, batch.targets[rows, positions],
                                    with_entropy, chunk)
    return TokenScores(logprobs, entropy if with_entropy else None, rows, positions)
