"""TDAM: the blocks on a real tokenized trajectory, the materialised mask, and what a 1-layer model's
rows can and cannot see."""
import numpy as np
import pytest
import torch
from learner_fixtures import trajectory, write_colour_mp4

from vo3rl.train.tdam import Block, tdam_blocks, tdam_mask


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_colour_mp4(str(tmp_path_factory.mktemp("tdam") / "colours.mp4"))


@pytest.fixture(scope="module")
def traj(tokenizer, video):
    return trajectory(tokenizer, video)


def _runs(ids, token_id):
    """[start, end) of each maximal run of `token_id` in `ids`."""
    runs, start = [], None
    for i, t in enumerate(list(ids) + [-1]):
        if t == token_id and start is None:
            start = i
        elif t != token_id and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_mask_spans_on_a_real_trajectory_follow_the_rules(tokenizer, traj):
    ids = traj.token_ids
    pad = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    vstart, vend = (tokenizer.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>"))
    videos = _runs(ids, pad)
    assert len(videos) == 3
    for start, end in videos:  # pad runs sit strictly between the markers
        assert ids[start - 1] == vstart and ids[end] == vend
    blocks = tdam_blocks(traj)
    by_rule = {rule: [b for b in blocks if b.rule == rule] for rule in ("answer", "grounding")}
    # Rule (a): one block, the last answer span against video 0's pad run only.
    (answer,) = by_rule["answer"]
    assert (answer.k_start, answer.k_end) == videos[0]
    answer_text = tokenizer.decode(ids[answer.q_start : answer.q_end])
    assert "<answer>A</answer>" in answer_text and "<think>" not in answer_text
    # Rule (b): the first grounding is free; the second may not see crop 1, which precedes it;
    # crop 2 comes after it, so no block.
    (grounding,) = by_rule["grounding"]
    assert (grounding.k_start, grounding.k_end) == videos[1]
    text = tokenizer.decode(ids[grounding.q_start : grounding.q_end])
    assert '"temporal_segment": [5, 7]' in text and "<think>" not in text
    assert grounding.q_start > videos[1][1] and grounding.q_end <= videos[2][0]
    # Queries are assistant tokens only; keys never include markers or text.
    for b in blocks:
        assert set(traj.roles[b.q_start : b.q_end]) == {1}
        assert set(ids[b.k_start : b.k_end]) == {pad}


def test_a_single_video_trajectory_is_not_masked(tokenizer, video):
    from learner_fixtures import clip_for, three_video_example

    from vo3rl.agent.render import from_sft_example

    example = three_video_example(video)
    example.turns = [example.turns[0], example.turns[-1]]  # answer directly: one video
    single = from_sft_example(example, tokenizer, clip_for(example.sample.video))
    assert len(single.videos) == 1 and single.tag_spans("answer")
    assert tdam_blocks(single) == []


def test_materialised_mask_by_hand():
    mask = tdam_mask(6, [Block(4, 6, 1, 3, "answer")], valid=5)
    expected = np.array([
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 0, 0, 1, 1, 0],  # query 4: keys 1, 2 blocked
        [1, 0, 0, 1, 1, 1],  # token 5 is padding: a key for no one, its own row sees itself too
    ], dtype=bool)
    assert (mask == expected).all()


def test_one_layer_model_blocked_rows_ignore_the_blocked_video(tokenizer, traj, tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vo3rl.model.tiny import TinyModelConfig, build_processor, build_tiny_model
    from vo3rl.model.video_inputs import VideoMaterialiser
    from vo3rl.train.batch import build_batch

    model_dir = build_tiny_model(tmp_path / "one_layer", TinyModelConfig(text_layers=1))
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    materialiser = VideoMaterialiser(build_processor(tokenizer).video_processor)
    videos, _ = materialiser.inputs([traj])
    tps = model.config.vision_config.tokens_per_second
    n_video0 = int(np.prod(videos.grid_thw[0].tolist()))  # pixel rows of video 0 (pre-merge patches)

    def hidden(use_tdam, pixels):
        videos.pixel_values = pixels
        batch = build_batch([traj], videos, tokenizer.pad_token_id, tps, use_tdam=use_tdam)
        with torch.no_grad():
            return model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids, pixel_values_videos=batch.videos.pixel_values,
                               video_grid_thw=batch.videos.grid_thw, use_cache=False).last_hidden_state[0]

    original = videos.pixel_values.clone()
    changed = original.clone()
    changed[:n_video0] = torch.randn_like(changed[:n_video0]) * 3
    (answer,) = [b for b in tdam_blocks(traj) if b.rule == "answer"]
    blocked = slice(answer.q_start, answer.q_end)
    free = slice(answer.q_start - 5, answer.q_start)  # the final turn's think tokens: never masked
    with_tdam = hidden(True, original), hidden(True, changed)
    without = hidden(False, original), hidden(False, changed)
    assert torch.allclose(with_tdam[0][blocked], with_tdam[1][blocked], atol=1e-6)
    assert (without[0][blocked] - without[1][blocked]).abs().max() > 1e-4
    assert (with_tdam[0][free] - with_tdam[1][free]).abs().max() > 1e-4
