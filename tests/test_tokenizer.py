"""The tokenizer built offline must give the published Qwen2.5-VL ids."""
from vo3rl.model.tokenizer import FIRST_SPECIAL_ID, SPECIAL_TOKENS

# Ids as published in Qwen2.5-VL's tokenizer.json / config.json.
PUBLISHED = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
    "<tool_call>": 151657,
    "<|file_sep|>": 151664,
}


def test_special_token_ids_match_published(tokenizer):
    for token, expected in PUBLISHED.items():
        assert tokenizer.convert_tokens_to_ids(token) == expected, token
    assert len(SPECIAL_TOKENS) == 22 and FIRST_SPECIAL_ID == 151643
    assert len(tokenizer) == 151643 + 22


def test_plain_text_ids_match_published(tokenizer):
    assert tokenizer("Hello").input_ids == [9707]
    assert tokenizer("Hello world").input_ids == [9707, 1879]
    # Qwen2 splits digits one by one; single bytes have the byte-level rank ('!' = 0, so '0' = 15).
    assert tokenizer("2024").input_ids == [17, 15, 17, 19]


def test_special_tokens_are_atomic_and_round_trip(tokenizer):
    text = "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Where is the red square?<|im_end|>"
    ids = tokenizer(text).input_ids
    assert ids[:2] == [151644, 872] and ids[2] == 198  # <|im_start|>, "user", "\n"
    assert ids[3:6] == [151652, 151656, 151653]
    assert tokenizer.decode(ids) == text


def test_chat_template_renders_qwen_layout(tokenizer):
    messages = [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q?"}]},
        {"role": "assistant", "content": "<answer>A</answer>"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Q?<|im_end|>\n"
        "<|im_start|>assistant\n<answer>A</answer><|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
