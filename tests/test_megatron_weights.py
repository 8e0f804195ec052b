"""The Megatron backend's pure parts: the HF <-> Megatron weight mapping (bit for bit, both ways, with
tensor-parallel shards), the recipe keys and their checks, and which rank gets which batch share.
No megatron import, no process group."""
from dataclasses import replace

import pytest
import torch

from vo3rl.config.learner import LearnerConfig, MegatronConfig
from vo3rl.config.model import TinyModelConfig
from vo3rl.train.megatron.layout import RankLayout, degree_problem, replica_of_ranks
from vo3rl.train.megatron.weights import (
    MG_EMBEDDING,
    MG_HEAD,
    TextShape,
    fuse_qkv,
    hf_to_megatron,
    megatron_to_hf,
    padded_vocab,
    shard,
    split_qkv,
    unshard,
)


def _hf_state(tied: bool):
    """A random tiny Qwen2.5-VL's state dict (transformers' module names), 4 heads in 2 query groups."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vo3rl.model.tiny import qwen2_5_vl_config

    torch.manual_seed(0)
    config = qwen2_5_vl_config(TinyModelConfig(text_hidden=64, text_heads=4, text_kv_heads=2, mrope_section=[2, 3, 3],
                                               tie_word_embeddings=tied))
    model = Qwen2_5_VLForConditionalGeneration(config)
    return model.state_dict(), TextShape.from_config(config.to_dict())


@pytest.mark.parametrize("tied", [True, False])
def test_hf_to_megatron_and_back_is_bit_for_bit_and_shards_reassemble(tied):
    hf, shape = _hf_state(tied)
    assert (shape.heads, shape.kv_heads, shape.head_dim, shape.tied) == (4, 2, 16, tied)
    for tp in (1, 2):
        full = hf_to_megatron(hf, shape, tp)
        rows = padded_vocab(shape.vocab, tp)
        assert full[MG_EMBEDDING].shape[0] == rows and (MG_HEAD in full) == (not tied)
        assert not full[MG_EMBEDDING][shape.vocab:].any()  # the padding rows are zeros
        back = megatron_to_hf(full, shape)
        assert set(back) == set(hf)
        for key, value in hf.items():
            assert torch.equal(back[key], value), key
        assert (back["lm_head.weight"] is back["model.language_model.embed_tokens.weight"]) == tied
        shards = [shard(full, tp, rank) for rank in range(tp)]
        again = unshard(shards)
        assert set(again) == set(full) and all(torch.equal(again[k], full[k]) for k in full)
    # Two ranks: each holds half of every split tensor, the norms whole.
    half = shard(hf_to_megatron(hf, shape, 2), 2, 1)
    layer = "language.decoder.layers.0."
    assert half[layer + "self_attention.linear_qkv.weight"].shape == (2 * (2 + 2) * 16 // 2, 64)  # one group of q q k v
    assert half[layer + "self_attention.linear_proj.weight"].shape == (64, 32)
    assert half[layer + "mlp.linear_fc1.weight"].shape == (256, 64)
    assert half[layer + "input_layernorm.weight"].shape == (64,)
    assert half[MG_EMBEDDING].shape[0] == padded_vocab(shape.vocab, 2) // 2


def test_the_qkv_layout_is_per_query_group_and_a_rank_holds_whole_groups():
    shape = TextShape(heads=4, kv_heads=2, head_dim=1, vocab=8, tied=True)
    q, k, v = torch.tensor([[0.0], [1.0], [2.0], [3.0]]), torch.tensor([[10.0], [11.0]]), torch.tensor([[20.0], [21.0]])
    fused = fuse_qkv(q, k, v, shape)
    # group 0: q heads 0, 1 (they share kv head 0, as transformers' repeat_kv pairs them), k0, v0; then group 1
    assert fused.flatten().tolist() == [0, 1, 10, 20, 2, 3, 11, 21]
    assert all(torch.equal(a, b) for a, b in zip(split_qkv(fused, shape), (q, k, v)))
    # fc1 = [gate; up]; with 2 ranks each takes its half of gate and its half of up.
    gate, up = torch.arange(4.0).view(4, 1), 10 + torch.arange(4.0).view(4, 1)
    full = {"language.decoder.layers.0.mlp.linear_fc1.weight": torch.cat([gate, up])}
    assert shard(full, 2, 1)["language.decoder.layers.0.mlp.linear_fc1.weight"].flatten().tolist() == [2, 3, 12, 13]


def test_an_unknown_weight_is_refused():
    shape = TextShape(4, 2, 16, 256, True)
    with pytest.raises(ValueError, match="no Megatron counterpart"):
        hf_to_megatron({"model.language_model.layers.0.self_attn.q_norm.weight": torch.zeros(16)}, shape)
    with pytest.raises(ValueError, match="without its partner"):
        hf_to_megatron({"model.language_model.layers.0.self_attn.q_proj.weight": torch.zeros(64, 64)}, shape)


def test_recipe_keys_the_old_backend_key_moved_and_the_degrees_are_checked():
    from vo3rl.config import load_recipe
    from vo3rl.config.loader import RecipeError

    with pytest.raises(RecipeError, match=r"learner\.backend = 'gloo': the torch.distributed backend moved to "
                                          r"learner\.dist_backend"):
        load_recipe(None, ["model.path=x", "learner.backend=gloo"])
    recipe = load_recipe(None, ["model.path=x", "learner.backend=megatron", "learner.ranks=4",
                                "learner.megatron.tensor_parallel=2", "learner.dist_backend=gloo"])
    assert recipe.learner.megatron.tensor_parallel == 2 and recipe.learner.dist_backend == "gloo"
    cases = [
        (dict(ranks=3, megatron=MegatronConfig(tensor_parallel=2)), "learner.ranks = 3: must be a multiple of"),
        (dict(ranks=2, megatron=MegatronConfig(pipeline_parallel=2)), "pipeline parallelism is not supported"),
        (dict(ranks=2, megatron=MegatronConfig(context_parallel=2)), "context parallelism is not supported"),
        (dict(megatron=MegatronConfig(tensor_parallel=0)), "tensor_parallel = 0: must be >= 1"),
        (dict(attention="flex"), "auto or sdpa with learner.backend megatron"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message):
            replace(LearnerConfig(backend="megatron"), **changes).validate()
    with pytest.raises(ValueError, match=r"learner\.megatron\.tensor_parallel = 2: must be 1 \(its default\) unless "
                                         r"learner\.backend is megatron"):
        LearnerConfig(megatron=MegatronConfig(tensor_parallel=2)).validate()
    with pytest.raises(ValueError, match="learner.backend = 'ddp': must be one of fsdp2, megatron"):
        LearnerConfig(backend="ddp").validate()
    with pytest.raises(ValueError, match="learner.dist_backend = 'mpi'"):
        LearnerConfig(dist_backend="mpi").validate()


def test_tensor_parallel_must_split_whole_heads_and_ranks_of_a_replica_share_a_batch():
    text = {"num_attention_heads": 4, "num_key_value_heads": 2}
    assert degree_problem(2, text) is None
    assert degree_problem(4, text) == ("learner.megatron.tensor_parallel = 4: must divide the model's "
                                       "num_key_value_heads = 2 (each tensor-parallel rank holds whole attention heads)")
    assert "num_attention_heads = 3" in degree_problem(2, {"num_attention_heads": 3, "num_key_value_heads": 1})
    assert replica_of_ranks(4, 2) == [0, 0, 1, 1] and replica_of_ranks(3, 1) == [0, 1, 2]
    assert (RankLayout(3, 4, 2).tp_rank, RankLayout(3, 4, 2).dp_rank, RankLayout(3, 4, 2).dp_size) == (1, 1, 2)
    from vo3rl.workers.learner import LearnerGroup, replica_of_ranks as group_replicas

    assert group_replicas(LearnerConfig(backend="megatron", ranks=4, megatron=MegatronConfig(tensor_parallel=2))) == [0, 0, 1, 1]
    assert group_replicas(LearnerConfig(ranks=2)) == [0, 1]
    group = LearnerGroup.__new__(LearnerGroup)  # the batch split alone, without actors
    group.workers, group.replicas = [None] * 4, [0, 0, 1, 1]
    shares = group._shares(list("abcde"))
    assert shares[0] == shares[1] and shares[2] == shares[3] and sorted(shares[0] + shares[2]) == [0, 1, 2, 3, 4]
    assert group._leaders(["r0", "r1", "r2", "r3"]) == ["r0", "r2"]
