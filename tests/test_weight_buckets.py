"""The process-group weight sync's pure parts: bucket plans, pack/unpack bit for bit, the plan's JSON;
the gloo transport with three members in threads of this process; the recipe key; the step's dispatch."""
import textwrap
import threading

import pytest
import torch

from vo3rl.rollout.weight_buckets import Plan, pack, plan_buckets, unpack, with_aliases
from vo3rl.rollout.weight_group import Receiver, WeightGroup, open_store, send_weights, tensor_digest


def mixed_state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    embed = torch.randn(64, 16, generator=generator)
    return {
        "embed.weight": embed,
        "norm.weight": torch.randn(16, generator=generator).to(torch.bfloat16),
        "layer.q": torch.randn(16, 16, generator=generator),
        "layer.half": torch.randn(3, 5, generator=generator).to(torch.float16),
        "big": torch.randn(40, 40, generator=generator),  # 6,400 B: larger than the 2 KiB bucket below
        "lm_head.weight": embed,  # tied: the same tensor under a second name
        "step": torch.tensor([7], dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "transposed": torch.randn(4, 6, generator=generator).t(),  # not contiguous
        "nan_and_negzero": torch.tensor([float("nan"), -0.0, float("inf")]),
    }


def round_trip(state: dict, bucket_bytes: int) -> tuple[Plan, dict]:
    plan = Plan.from_json(plan_buckets(state, bucket_bytes).to_json())  # what a receiver sees
    named = (item for bucket in plan.buckets for item in unpack(bucket, pack(bucket, state)))
    return plan, dict(with_aliases(plan, named))


def test_pack_unpack_round_trip_is_bit_for_bit_with_mixed_dtypes():
    state = mixed_state()
    plan, back = round_trip(state, bucket_bytes=2048)
    assert set(back) == set(state) and sorted(plan.names()) == sorted(state)
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape, name
        assert tensor_digest(back[name]) == tensor_digest(tensor), name  # NaN, -0.0 and inf included


def test_buckets_hold_one_dtype_within_the_limit_and_a_big_tensor_alone():
    state = mixed_state()
    plan = plan_buckets(state, bucket_bytes=2048)
    for bucket in plan.buckets:
        assert {str(state[e.name].dtype).removeprefix("torch.") for e in bucket.entries} == {bucket.dtype}
        assert bucket.nbytes <= 2048 or len(bucket.entries) == 1
    (big,) = [b for b in plan.buckets if any(e.name == "big" for e in b.entries)]
    assert big.entries[0].numel == 1600 and len(big.entries) == 1 and big.nbytes == 6400
    assert plan.aliases == {"lm_head.weight": "embed.weight"}  # sent once
    assert plan.nbytes == sum(t.numel() * t.element_size() for n, t in state.items() if n != "lm_head.weight")


def test_one_dtype_keeps_the_state_dict_order_and_one_big_bucket_takes_everything():
    state = {f"t{i}": torch.full((10,), float(i)) for i in range(7)}
    plan = plan_buckets(state, bucket_bytes=100)  # 40 B each: two per bucket
    assert [e.name for b in plan.buckets for e in b.entries] == list(state)
    assert [len(b.entries) for b in plan.buckets] == [2, 2, 2, 1]
    assert len(plan_buckets(state, bucket_bytes=1 << 20).buckets) == 1
    assert plan_buckets({}, 1).buckets == ()
    with pytest.raises(ValueError):
        plan_buckets(state, 0)


def test_a_packed_tensor_that_does_not_fit_its_plan_is_refused():
    state = {"a": torch.zeros(4)}
    (bucket,) = plan_buckets(state, 1024).buckets
    with pytest.raises(ValueError, match="does not fit"):
        pack(bucket, {"a": torch.zeros(5)})
    with pytest.raises(ValueError, match="not the bucket"):
        list(unpack(bucket, torch.zeros(4, dtype=torch.float64)))


def test_gloo_broadcast_reaches_every_member_bit_for_bit():
    state = mixed_state()
    world = 3
    store = open_store("127.0.0.1", world, timeout_s=30)
    received, errors, stats = {}, [], {}

    def member(rank: int) -> None:
        try:
            if rank == 0:
                group = WeightGroup(0, world, "gloo", 30, store=store)
                for _ in range(2):  # two syncs over one group
                    stats.update(send_weights(group, state, bucket_bytes=2048))
            else:
                group = WeightGroup(rank, world, "gloo", 30, host="127.0.0.1", port=store.port)
                dict(Receiver(group))  # the first sync
                receiver = Receiver(group)
                received[rank] = dict(receiver)
                received[f"{rank}/bytes"] = receiver.bytes
            group.close()
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=member, args=(rank,)) for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert stats["buckets"] >= 5 and stats["tensors"] == len(state)
    for rank in (1, 2):
        assert received[f"{rank}/bytes"] == stats["bytes"]
        assert {n: tensor_digest(t) for n, t in received[rank].items()} == {n: tensor_digest(t) for n, t in state.items()}


def test_a_receiver_that_stops_early_drains_the_rest_and_stays_in_step():
    first, second = {"a": torch.arange(300.0), "b": torch.arange(300.0) + 1}, {"a": torch.ones(300)}
    store = open_store("127.0.0.1", 2, timeout_s=30)
    got = {}

    def sender():
        group = WeightGroup(0, 2, "gloo", 30, store=store)
        send_weights(group, first, bucket_bytes=1200)
        send_weights(group, second, bucket_bytes=1200)

    thread = threading.Thread(target=sender)
    thread.start()
    group = WeightGroup(1, 2, "gloo", 30, host="127.0.0.1", port=store.port)
    receiver = Receiver(group)
    next(iter(receiver))  # a loader that fails after one tensor
    receiver.drain()
    got.update(Receiver(group))
    thread.join(30)
    assert torch.equal(got["a"], second["a"]) and set(got) == {"a"}


def test_the_recipe_key_is_typed_and_checked(tmp_path):
    from vo3rl.config import RecipeError, load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""
        run:
          name: r
        model:
          path: /nowhere
    """))
    assert load_recipe(recipe).rl.weight_sync == "object_store"  # the default: nothing changes
    assert load_recipe(recipe, ["rl.weight_sync=process_group"]).rl.weight_sync == "process_group"
    with pytest.raises(RecipeError, match="rl.weight_sync.*object_store, process_group"):
        load_recipe(recipe, ["rl.weight_sync=nccl"])
    with pytest.raises(RecipeError, match="rl.weight_sync_bucket_mb"):
        load_recipe(recipe, ["rl.weight_sync_bucket_mb=0"])


def test_sync_weights_uses_the_weight_sync_service_when_there_is_one():
    from vo3rl.rl.step import StepServices, sync_weights

    calls = []

    class Rollout:
        def update_weights(self, weights, version=None):
            calls.append(("object_store", version))

    class Learner:
        def export_weights(self):
            return {}

    class Sync:
        def sync(self, version):
            calls.append(("process_group", version))

    timings = {}
    sync_weights(StepServices(Rollout(), None, Learner()), 3, timings)
    sync_weights(StepServices(Rollout(), None, Learner(), weight_sync=Sync()), 4, timings)
    assert calls == [("object_store", 3), ("process_group", 4)] and "sync" in timings
