"""What makes a small model a look-alike of Qwen2.5-VL-7B-Instruct: its published config, and a check that
another config shrinks it consistently.

A look-alike keeps everything that decides how the model is loaded, tokenised, sharded, positioned and
served (model type, vocabulary and special token ids, untied LM head, RoPE base and multimodal sections'
proportions, GQA ratio, vision patching, windowed attention with periodic full-attention blocks, bf16
weights) and shrinks only widths and depths. The smoke recipes train one, so the path a real 7B takes
(load, shard, train, checkpoint, reload in vLLM) is the one the tests run.
"""
from __future__ import annotations

# Qwen2.5-VL-7B-Instruct's config.json (the published values this project depends on).
QWEN2_5_VL_7B = {
    "model_type": "qwen2_5_vl",
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128000,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06,
    "mrope_section": [16, 24, 24],
    "tie_word_embeddings": False,
    "dtype": "bfloat16",
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision": {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "tokens_per_second": 2,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "hidden_act": "silu",
    },
}
_SAME_TOP = ("model_type", "vocab_size", "max_position_embeddings", "tie_word_embeddings", "dtype", "rms_norm_eps",
             "bos_token_id", "eos_token_id", "vision_start_token_id", "vision_end_token_id", "image_token_id",
             "video_token_id")
_SAME_VISION = ("patch_size", "spatial_merge_size", "temporal_patch_size", "window_size", "tokens_per_second",
                "hidden_act")
RATIO_TOLERANCE = 0.01  # widths shrink by whole numbers of heads, so MLP ratios match to about 1 %


def _text(config: dict) -> dict:
    """The text model's keys, the top level's winning (it holds model_type, dtype and the token ids)."""
    return {**(config.get("text_config") or {}), **{k: v for k, v in config.items() if k != "text_config"}}


def _rope(text: dict) -> tuple[float | None, list[int] | None]:
    rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
    return text.get("rope_theta", rope.get("rope_theta")), rope.get("mrope_section")


def _close(have: float, want: float) -> bool:
    return abs(have - want) <= RATIO_TOLERANCE * want


def lookalike_problems(config: dict, reference: dict = QWEN2_5_VL_7B) -> list[str]:
    """How `config` (a config.json as a dict) fails to be a consistent shrink of `reference`; empty when
    it is one. Widths and depths may be smaller; every ratio, id and layout rule must be the reference's."""
    text, vision = _text(config), config.get("vision_config") or {}
    ref_vision = reference["vision"]
    problems = [f"{key} = {text.get(key)!r}: must be {reference[key]!r}"
                for key in _SAME_TOP if text.get(key) != reference[key]]
    if config.get("architectures") != reference["architectures"]:
        problems.append(f"architectures = {config.get('architectures')}: must be {reference['architectures']}")
    problems += [f"vision.{key} = {vision.get(key)!r}: must be {ref_vision[key]!r}"
                 for key in _SAME_VISION if vision.get(key) != ref_vision[key]]
    theta, sections = _rope(text)
    if theta != reference["rope_theta"]:
        problems.append(f"rope_theta = {theta}: must be {reference['rope_theta']}")
    heads, kv_heads, hidden = text["num_attention_heads"], text["num_key_value_heads"], text["hidden_size"]
    ref_ratio = reference["num_attention_heads"] // reference["num_key_value_heads"]
    if heads % kv_heads or heads // kv_heads != ref_ratio:
        problems.append(f"num_attention_heads / num_key_value_heads = {heads}/{kv_heads}: must be {ref_ratio}")
    ref_sections = reference["mrope_section"]
    if not sections or sum(sections) * 2 != hidden // heads or any(
            s * sum(ref_sections) != r * sum(sections) for s, r in zip(sections, ref_sections)):
        problems.append(f"mrope_section = {sections}: must be {ref_sections} scaled to head_dim/2 = {hidden // heads // 2}")
    ref_mlp = reference["intermediate_size"] / reference["hidden_size"]
    if not _close(text["intermediate_size"] / hidden, ref_mlp):
        problems.append(f"intermediate_size / hidden_size = {text['intermediate_size'] / hidden:.3f}: must be {ref_mlp:.3f}")
    if text["num_hidden_layers"] > reference["num_hidden_layers"] or hidden > reference["hidden_size"]:
        problems.append("the text model must not be larger than the reference")
    problems += _vision_problems(vision, ref_vision, hidden)
    return problems


def _vision_problems(vision: dict, ref: dict, text_hidden: int) -> list[str]:
    problems = []
    if vision.get("hidden_size", 0) // max(vision.get("num_heads", 1), 1) != ref["hidden_size"] // ref["num_heads"]:
        problems.append(f"vision head dim = {vision.get('hidden_size')}/{vision.get('num_heads')}: must be "
                        f"{ref['hidden_size'] // ref['num_heads']}")
    ref_mlp = ref["intermediate_size"] / ref["hidden_size"]
    if not _close(vision.get("intermediate_size", 0) / vision.get("hidden_size", 1), ref_mlp):
        problems.append(f"vision intermediate_size / hidden_size: must be {ref_mlp:.3f}")
    if vision.get("out_hidden_size") != text_hidden:
        problems.append(f"vision.out_hidden_size = {vision.get('out_hidden_size')}: must be the text hidden size {text_hidden}")
    depth, n_full = vision.get("depth", 0), len(ref["fullatt_block_indexes"])
    group = depth // n_full if depth % n_full == 0 else 0
    want = [group * (i + 1) - 1 for i in range(n_full)] if group > 1 else None
    if want is None or vision.get("fullatt_block_indexes") != want:
        problems.append(f"vision.fullatt_block_indexes = {vision.get('fullatt_block_indexes')} (depth {depth}): must be "
                        f"the last block of each of {n_full} equal groups of windowed blocks")
    return problems
