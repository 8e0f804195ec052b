"""Qwen2.5-VL weights between HF's layout and Megatron's, and Megatron's tensor-parallel shards. Pure
torch, no megatron import: the same functions map parameters and Adam's moments (they share shapes).

Key names. HF: the module names of transformers' `Qwen2_5_VLForConditionalGeneration` (what the FSDP2
learner exports and `checkpoint.save_hf_checkpoint` writes): `model.language_model.*`, `model.visual.*`,
`lm_head.weight`. Megatron: the names of `vo3rl.train.megatron.model.MegatronPolicy`: `language.` + the
GPTModel's keys, `visual.` + the HF vision tower's own keys (it is the HF module, unchanged).

The language model, layer by layer:

| HF | Megatron |
|---|---|
| `q_proj`, `k_proj`, `v_proj` (weight, bias) | `self_attention.linear_qkv`: per query group g, its q heads then its k and v head |
| `o_proj` | `self_attention.linear_proj` |
| `gate_proj`, `up_proj` | `mlp.linear_fc1` = [gate; up] (SwiGLU takes silu of the first half) |
| `down_proj` | `mlp.linear_fc2` |
| `input_layernorm`, `post_attention_layernorm` | `input_layernorm`, `pre_mlp_layernorm` |
| `embed_tokens`, `norm`, `lm_head` | `embedding.word_embeddings`, `decoder.final_layernorm`, `output_layer` (absent when tied) |

The vocabulary rows are padded with zeros to a multiple of 128 x tp (the vocab-parallel embedding and
head split them evenly); the padding is cut off again on the way back, so it never reaches an HF export.

Tensor parallelism: column-parallel tensors (embedding, head, linear_qkv, linear_fc1) split along dim
0, row-parallel ones (linear_proj, linear_fc2) along dim 1, norms are replicated. linear_qkv's groups
are contiguous, so a rank's rows are whole query groups; linear_fc1 splits gate and up separately, each
rank holding [its gate rows; its up rows].
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

HF_TEXT = "model.language_model."
HF_VISION = "model.visual."
HF_HEAD = "lm_head.weight"
MG_TEXT = "language."
MG_VISION = "visual."
MG_EMBEDDING = MG_TEXT + "embedding.word_embeddings.weight"
MG_HEAD = MG_TEXT + "output_layer.weight"
MG_FINAL_NORM = MG_TEXT + "decoder.final_layernorm.weight"
VOCAB_MULTIPLE = 128  # rows per tensor-parallel rank are padded to a multiple of this

# One HF tensor <-> one Megatron tensor, inside layer i.
_LAYER_RENAMES = {
    "input_layernorm.weight": "input_layernorm.weight",
    "post_attention_layernorm.weight": "pre_mlp_layernorm.weight",
    "self_attn.o_proj.weight": "self_attention.linear_proj.weight",
    "mlp.down_proj.weight": "mlp.linear_fc2.weight",
}
_QKV = ("q_proj", "k_proj", "v_proj")
_HF_LAYER = re.compile(re.escape(HF_TEXT) + r"layers\.(\d+)\.(.+)$")
_MG_LAYER = re.compile(re.escape(MG_TEXT) + r"decoder\.layers\.(\d+)\.(.+)$")
_COLUMN_PARALLEL = ("embedding.word_embeddings.weight", "output_layer.weight", "self_attention.linear_qkv.weight",
                    "self_attention.linear_qkv.bias", "mlp.linear_fc1.weight")
_ROW_PARALLEL = ("self_attention.linear_proj.weight", "mlp.linear_fc2.weight")


@dataclass(frozen=True)
class TextShape:
    """The language model's sizes: attention `heads` and `kv_heads` (query groups) of `head_dim`,
    `vocab` rows (unpadded), `tied` input and output embeddings."""

    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict) -> "TextShape":
        """From a Qwen2.5-VL config.json (dict); its `text_config`, when present, holds the sizes."""
        text = config.get("text_config") or config
        heads = int(text["num_attention_heads"])
        tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
        return cls(heads, int(text.get("num_key_value_heads") or heads),
                   int(text.get("head_dim") or text["hidden_size"] // heads), int(text["vocab_size"]), bool(tied))


def padded_vocab(vocab: int, tp: int) -> int:
    """Embedding rows after padding: the next multiple of 128 x `tp`."""
    step = VOCAB_MULTIPLE * tp
    return -(-vocab // step) * step


def fuse_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shape: TextShape) -> torch.Tensor:
    """linear_qkv's rows (weight or bias) from HF's q, k and v: per query group, its q heads, k, v."""
    rest = q.shape[1:]
    groups, per_group, dim = shape.kv_heads, shape.heads // shape.kv_heads, shape.head_dim
    fused = torch.cat([q.reshape(groups, per_group * dim, *rest), k.reshape(groups, dim, *rest),
                       v.reshape(groups, dim, *rest)], dim=1)
    return fused.reshape(-1, *rest)


def split_qkv(qkv: torch.Tensor, shape: TextShape) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HF's (q, k, v) rows from linear_qkv's (the inverse of `fuse_qkv`)."""
    rest = qkv.shape[1:]
    groups, per_group, dim = shape.kv_heads, shape.heads // shape.kv_heads, shape.head_dim
    q, k, v = qkv.reshape(groups, (per_group + 2) * dim, *rest).split([per_group * dim, dim, dim], dim=1)
    return q.reshape(-1, *rest), k.reshape(-1, *rest), v.reshape(-1, *rest)


def _pad_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    if tensor.shape[0] == rows:
        return tensor
    padded = tensor.new_zeros((rows, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    return padded


def hf_to_megatron(hf: dict, shape: TextShape, tp: int = 1) -> dict:
    """The full (unsharded) Megatron state of HF tensors `hf` (any subset holding whole q/k/v trios and
    gate/up pairs, e.g. only the trainable parameters' moments); vocabulary rows padded for `tp` ranks.
    With tied embeddings, `lm_head.weight` (an alias of the embedding) is dropped. Raises ValueError on
    a key it does not know."""
    out, pending = {}, {}
    rows = padded_vocab(shape.vocab, tp)
    for key, tensor in hf.items():
        layer = _HF_LAYER.match(key)
        if key.startswith(HF_VISION):
            out[MG_VISION + key[len(HF_VISION):]] = tensor
        elif key == HF_TEXT + "embed_tokens.weight":
            out[MG_EMBEDDING] = _pad_rows(tensor, rows)
        elif key == HF_TEXT + "norm.weight":
            out[MG_FINAL_NORM] = tensor
        elif key == HF_HEAD:
            if not shape.tied:
                out[MG_HEAD] = _pad_rows(tensor, rows)
        elif layer and layer.group(2) in _LAYER_RENAMES:
            out[f"{MG_TEXT}decoder.layers.{layer.group(1)}.{_LAYER_RENAMES[layer.group(2)]}"] = tensor
        elif layer and re.fullmatch(r"(self_attn\.[qkv]_proj|mlp\.(gate|up)_proj)\.(weight|bias)", layer.group(2)):
            pending[(layer.group(1), layer.group(2))] = tensor
        else:
            raise ValueError(f"HF weight {key!r} has no Megatron counterpart")
    for (index, name), tensor in list(pending.items()):
        prefix = f"{MG_TEXT}decoder.layers.{index}."
        part, kind = name.rsplit(".", 1)
        try:
            if part == "self_attn.q_proj":
                parts = [pending.pop((index, f"self_attn.{p}.{kind}")) for p in _QKV]
                out[f"{prefix}self_attention.linear_qkv.{kind}"] = fuse_qkv(*parts, shape)
            elif part == "mlp.gate_proj":
                out[f"{prefix}mlp.linear_fc1.{kind}"] = torch.cat(
                    [pending.pop((index, f"mlp.gate_proj.{kind}")), pending.pop((index, f"mlp.up_proj.{kind}"))])
        except KeyError as missing:
            raise ValueError(f"layer {index}: {name} comes without its partner {missing}") from None
    if pending:
        raise ValueError(f"HF weights without their fused partners: {sorted(n for _, n in pending)[:3]}")
    return out


def megatron_to_hf(mg: dict, shape: TextShape, tied_alias: bool = True) -> dict:
    """HF tensors of the full Megatron state `mg` (the inverse of `hf_to_megatron`): vocabulary padding
    cut off; with tied embeddings and `tied_alias`, `lm_head.weight` is the embedding tensor itself (as
    in transformers' state dict). Megatron's `_extra_state` entries are skipped."""
    out = {}
    for key, tensor in mg.items():
        layer = _MG_LAYER.match(key)
        if key.endswith("._extra_state"):
            continue
        if key.startswith(MG_VISION):
            out[HF_VISION + key[len(MG_VISION):]] = tensor
        elif key == MG_EMBEDDING:
            out[HF_TEXT + "embed_tokens.weight"] = tensor[: shape.vocab]
            if shape.tied and tied_alias:
                out[HF_HEAD] = out[HF_TEXT + "embed_tokens.weight"]
        elif key == MG_HEAD:
            out[HF_HEAD] = tensor[: shape.vocab]
        elif key == MG_FINAL_NORM:
            out[HF_TEXT + "norm.weight"] = tensor
        elif layer:
            prefix, name = f"{HF_TEXT}layers.{layer.group(1)}.", layer.group(2)
            renamed = {v: k for k, v in _LAYER_RENAMES.items()}.get(name)
            if renamed:
                out[prefix + renamed] = tensor
            elif name.startswith("self_attention.linear_qkv."):
                kind = name.rsplit(".", 1)[1]
                for part, value in zip(_QKV, split_qkv(tensor, shape)):
                    out[f"{prefix}self_attn.{part}.{kind}"] = value
            elif name.startswith("mlp.linear_fc1."):
                kind = name.rsplit(".", 1)[1]
                gate, up = tensor.chunk(2)
                out[f"{prefix}mlp.gate_proj.{kind}"], out[f"{prefix}mlp.up_proj.{kind}"] = gate, up
            else:
                raise ValueError(f"Megatron weight {key!r} has no HF counterpart")
        else:
            raise ValueError(f"Megatron weight {key!r} has no HF counterpart")
    return out


def partition_dim(key: str) -> int | None:
    """The dim tensor parallelism splits Megatron tensor `key` along (None: replicated on every rank)."""
    if key.startswith(MG_TEXT) and key.endswith(_COLUMN_PARALLEL):
        return 0
    if key.startswith(MG_TEXT) and key.endswith(_ROW_PARALLEL):
        return 1
    return None


def _is_fc1(key: str) -> bool:
    return key.endswith("mlp.linear_fc1.weight")


def shard(full: dict, tp: int, rank: int) -> dict:
    """Tensor-parallel rank `rank`'s part of the full Megatron state `full`."""
    out = {}
    for key, tensor in full.items():
        dim = partition_dim(key)
        if dim is None or tp == 1:
            out[key] = tensor
            continue
        if tensor.shape[dim] % (2 * tp if _is_fc1(key) else tp):
            raise ValueError(f"{key}: {tensor.shape[dim]} rows along dim {dim} do not split over {tp} ranks")
        if _is_fc1(key):
            gate, up = tensor.chunk(2)
            out[key] = torch.cat([gate.chunk(tp)[rank], up.chunk(tp)[rank]])
        else:
            out[key] = tensor.chunk(tp, dim)[rank]
    return out


def unshard(shards: list[dict]) -> dict:
    """The full Megatron state from every tensor-parallel rank's part (in rank order)."""
    out = {}
    for key in shards[0]:
        dim = partition_dim(key)
        parts = [part[key] for part in shards]
        if dim is None or len(parts) == 1:
            out[key] = parts[0]
        elif _is_fc1(key):
            halves = [p.chunk(2) for p in parts]
            out[key] = torch.cat([torch.cat([h[0] for h in halves]), torch.cat([h[1] for h in halves])])
        else:
            out[key] = torch.cat(parts, dim)
    return out
