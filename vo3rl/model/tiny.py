"""A randomly initialised, tiny Qwen2.5-VL with the real tokenizer, saved as an ordinary HF directory.

The architecture, token ids, chat layout and processor are Qwen2.5-VL's; only the widths and depths are
small, so the whole stack (transformers, vLLM, FSDP, the rollout loop) runs on a laptop CPU exactly as it
would with a 7B checkpoint. Nothing is downloaded.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from vo3rl.config.model import TinyModelConfig
from vo3rl.model.tokenizer import build_tokenizer, write_vocab_and_merges

log = logging.getLogger(__name__)

# Frames reach the processors already resized by vo3rl's sampler (multiples of 28 px); the processors'
# pixel bounds only need to contain every size the sampler can produce so they never resize again.
PROCESSOR_MIN_PIXELS = 56 * 56
PROCESSOR_MAX_PIXELS = 16384 * 28 * 28


def qwen2_5_vl_config(cfg: TinyModelConfig):
    from transformers import Qwen2_5_VLConfig

    cfg.validate()
    text = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.text_hidden,
        intermediate_size=cfg.text_intermediate,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        num_key_value_heads=cfg.text_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": list(cfg.mrope_section)},
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
    )
    vision = dict(
        depth=cfg.vision_depth,
        hidden_size=cfg.vision_hidden,
        intermediate_size=cfg.vision_intermediate,
        num_heads=cfg.vision_heads,
        out_hidden_size=cfg.text_hidden,
        fullatt_block_indexes=cfg.fullatt_blocks(),
        tokens_per_second=cfg.vision_tokens_per_second,
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
    )


def build_processor(tokenizer=None):
    """Qwen2.5-VL's processor with our tokenizer and pixel bounds wide enough to never resize."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    tokenizer = tokenizer or build_tokenizer()
    size = {"shortest_edge": PROCESSOR_MIN_PIXELS, "longest_edge": PROCESSOR_MAX_PIXELS}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size, do_sample_frames=False, cap_pixels_per_frame=False),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )


TINY_MARKER = "vo3rl_tiny.json"  # written into every folder `build_tiny_model` made


class NotOurModel(FileExistsError):
    """The folder holds files this project did not write: it may be someone's real checkpoint."""


def build_tiny_model(out_dir: str | Path, cfg: TinyModelConfig | None = None) -> Path:
    """Initialise a tiny Qwen2.5-VL from `cfg.seed` and save model, tokenizer and processor in `out_dir`:
    the files a released Qwen2.5-VL ships (config, generation config, safetensors — sharded with an index
    when `cfg.max_shard_mb` > 0 — in `cfg.save_dtype`, tokenizer.json, vocab.json, merges.txt, processor
    configs, chat template).

    Returns the directory. Same seed and config give the same weights. Writes only into a folder that is
    new, empty, or one this function made before (it holds `vo3rl_tiny.json`); any other folder may be a
    real checkpoint, and NotOurModel is raised before anything is touched.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    cfg = cfg or TinyModelConfig()
    out = Path(out_dir)
    if out.exists() and not (out / TINY_MARKER).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise NotOurModel(f"{out} already holds files that vo3rl did not write (no {TINY_MARKER}); a random tiny "
                          f"model is never written over them: give another folder")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = Qwen2_5_VLForConditionalGeneration(qwen2_5_vl_config(cfg)).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643, do_sample=False
    )
    if cfg.save_dtype == "bfloat16":  # initialised in fp32 from the seed, stored as a real checkpoint is
        model = model.to(torch.bfloat16)
    shard = {"max_shard_size": f"{cfg.max_shard_mb}MB"} if cfg.max_shard_mb else {}
    model.save_pretrained(out, safe_serialization=True, **shard)
    processor = build_processor()
    processor.save_pretrained(out)
    write_vocab_and_merges(out)
    (out / TINY_MARKER).write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    n_params = sum(p.numel() for p in model.parameters())
    log.info("tiny Qwen2.5-VL with %.1fM parameters saved to %s", n_params / 1e6, out)
    return out
