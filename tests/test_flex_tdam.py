"""TDAM as a FlexAttention block mask: the per-token tables against the by-hand reference, the block
sparsity against torch's own `create_block_mask`, and the tiny model's log-probs under FlexAttention
against the SDPA boolean path (padding, TDAM on and off).

FlexAttention on CPU in torch 2.13 runs forward only, eagerly (an unfused reference kernel); it has no
CPU backward, so training with it here must stop with a clear error. The compiled kernel and training
run on CUDA only (benchmarks/bench_learner_gpu.py checks them there)."""
import warnings

import numpy as np
import pytest
import torch
from learner_fixtures import trajectory, write_colour_mp4

from vo3rl.config.learner import LearnerConfig
from vo3rl.train.masks import RowLayout, dense_mask, mask_tables
from vo3rl.train.tdam import Block, tdam_blocks, tdam_mask

pytest.importorskip("torch.nn.attention.flex_attention", reason="this torch has no FlexAttention")
# The eager CPU kernel warns that it is unfused; that is the point of running it here.
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

FP32_ATOL = 2e-5  # nats: SDPA and the eager FlexAttention reference sum in different orders


def _layout():
    """Three padded rows (300, 170, 40 tokens): TDAM blocks in rows 0 and 2, two blocks sharing keys."""
    blocks = [[Block(250, 290, 10, 60, "answer"), Block(200, 240, 100, 150, "grounding"),
               Block(250, 290, 100, 150, "grounding")], [], [Block(20, 30, 2, 8, "answer")]]
    return RowLayout.padded([300, 170, 40], blocks), blocks


def test_dense_mask_matches_the_reference_per_row():
    layout, blocks = _layout()
    mask = dense_mask(layout).numpy()[:, 0]
    assert mask.shape == (3, 300, 300)
    for row, (length, row_blocks) in enumerate(zip([300, 170, 40], blocks)):
        np.testing.assert_array_equal(mask[row, :length, :length], tdam_mask(length, row_blocks))
        assert not mask[row, :length, length:].any()  # no real query sees padding
        pad = mask[row, length:, :]  # a padding query sees only itself
        assert (pad.sum(-1) == 1).all() and pad[:, length:].diagonal().all()
    packed = dense_mask(RowLayout.packed([5, 3], [[], [Block(2, 3, 0, 1, "answer")]])).numpy()[0, 0]
    expected = np.zeros((8, 8), dtype=bool)
    expected[:5, :5] = tdam_mask(5, [])
    expected[5:, 5:] = tdam_mask(3, [Block(2, 3, 0, 1, "answer")])
    np.testing.assert_array_equal(packed, expected)


def test_overlapping_key_ranges_are_refused():
    layout = RowLayout.padded([20], [[Block(10, 12, 0, 5, "answer"), Block(15, 18, 3, 8, "grounding")]])
    with pytest.raises(ValueError, match="overlap"):
        mask_tables(layout)


def test_block_mask_equals_torchs_create_block_mask():
    """Same tiles, same order, same full/partial split as torch builds from the same mask_mod (small
    16-token tiles, so many tiles are partial, full and empty)."""
    from torch.nn.attention.flex_attention import create_block_mask

    from vo3rl.train.flex_mask import flex_block_mask
    from vo3rl.train.masks import allowed

    for layout in (_layout()[0], RowLayout.packed([100, 50, 80], [[], [Block(40, 50, 5, 20, "answer")], []])):
        mine = flex_block_mask(layout, "cpu", block=16)
        document, key_group, query_bits = mask_tables(layout, multiple=16).tensors
        theirs = create_block_mask(lambda b, h, q, k: allowed(document, key_group, query_bits, b, q, k),
                                   layout.rows, 1, layout.width, layout.width, device="cpu", BLOCK_SIZE=16)
        for name in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices", "q_num_blocks",
                     "q_indices", "full_q_num_blocks", "full_q_indices"):
            assert torch.equal(getattr(mine, name), getattr(theirs, name)), name
        assert int(mine.full_kv_num_blocks.sum()) > 0 and int(mine.kv_num_blocks.sum()) > 0


@pytest.fixture(scope="module")
def trajs(tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("flex")
    video = write_colour_mp4(str(folder / "a.mp4"))
    other = write_colour_mp4(str(folder / "b.mp4"), seed=1)
    # Different lengths (so the shorter row is padded), three videos each (so TDAM blocks exist).
    return [trajectory(tokenizer, video),
            trajectory(tokenizer, other, sample_id="s2", answer_text="B, the blue one, clearly and surely")]


def _learner(model_dir, tokenizer, **overrides):
    from vo3rl.train.learner import Learner

    cfg = LearnerConfig(**{"lr": 1e-3, "warmup_ratio": 0.0, "micro_batch_tokens": 100_000} | overrides)
    return Learner(model_dir, cfg, total_steps=4, tokenizer=tokenizer)


def test_flex_and_sdpa_give_the_same_logprobs(tiny_model_dir, tokenizer, trajs):
    assert len(trajs[0]) != len(trajs[1]) and all(tdam_blocks(t) for t in trajs)
    sdpa = _learner(tiny_model_dir, tokenizer, attention="sdpa")
    flex = _learner(tiny_model_dir, tokenizer, attention="flex")
    assert (sdpa.attention, flex.attention) == ("sdpa", "flex")
    assert _learner(tiny_model_dir, tokenizer).attention == "sdpa"  # auto on CPU
    # The vision tower keeps SDPA; only the text decoder's attention moves.
    assert flex.model.model.visual.config._attn_implementation == "sdpa"
    results = {}
    for use_tdam in (False, True):
        for name, learner in (("sdpa", sdpa), ("flex", flex)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # Assistant positions only: the full-vocabulary head at every position would dominate.
                results[name, use_tdam] = learner.logprobs(trajs, with_entropy=use_tdam, loss_on="assistant",
                                                           use_tdam=use_tdam)
        for which in (0, 1) if use_tdam else (0,):  # log-probs (and entropies)
            for a, b, traj in zip(results["sdpa", use_tdam][which], results["flex", use_tdam][which], trajs):
                assert (~np.isnan(a)).sum() == traj.loss_mask()[1:].sum() > 20
                np.testing.assert_allclose(a, b, atol=FP32_ATOL, equal_nan=True)
    # The masks did something: TDAM moves the answer tokens' log-probs (under both attentions alike).
    answer = tdam_blocks(trajs[0])[0]
    assert answer.rule == "answer"
    moved = np.abs(results["flex", True][0][0] - results["flex", False][0][0])[answer.q_start + 1 : answer.q_end]
    assert np.nanmax(moved) > 1e-4


def test_flex_on_cpu_cannot_train_and_says_so(tiny_model_dir, tokenizer, trajs):
    from vo3rl.train.attention import FlexOnCPUTraining

    learner = _learner(tiny_model_dir, tokenizer, attention="flex")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FlexOnCPUTraining, match="learner.attention=sdpa"):
            learner.train_step(trajs[:1])


def test_attention_key_is_checked_and_resolved():
    from vo3rl.train.attention import resolve_attention

    with pytest.raises(ValueError, match="attention"):
        LearnerConfig(attention="flash").validate()
    assert resolve_attention("auto", torch.device("cpu")) == "sdpa"
    assert resolve_attention("auto", torch.device("cuda")) == "flex"
    assert resolve_attention("flex", torch.device("cpu")) == "flex"
