"""The one registry helper, and the six registries built on it."""
import pytest

from vo3rl.registry import Registry, UnknownName


def test_register_get_and_list():
    things = Registry("widget")

    @things.register("b")
    def b():
        return "b"

    assert things.add("a", "the a") == "the a"
    assert things.get("b") is b and things["a"] == "the a"
    assert "a" in things and "c" not in things
    assert things.names() == ("a", "b") == tuple(things) and len(things) == 2


def test_a_duplicate_name_is_refused():
    things = Registry("widget")
    things.add("a", 1)
    with pytest.raises(ValueError, match="widget named 'a' is already registered"):
        things.add("a", 2)
    with pytest.raises(ValueError, match="already registered"):
        things.register("a")(lambda: None)
    assert things.get("a") == 1  # the first one stands


def test_an_unknown_name_lists_the_known_ones_sorted():
    things = Registry("widget")
    for name in ("zeta", "alpha", "mid"):
        things.add(name, name)
    with pytest.raises(UnknownName) as info:
        things.get("nope")
    assert str(info.value) == "unknown widget 'nope'; known: alpha, mid, zeta"
    # Both a failed lookup and a bad configuration value, for callers that caught either.
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(KeyError, match="known: none"):
        Registry("gadget").get("x")


def test_the_projects_registries_hold_their_built_in_names():
    from vo3rl.agent.tools import TOOLS
    from vo3rl.data.readers import SAMPLE_FORMATS, SFT_FORMATS
    from vo3rl.orchestration.pipeline import STAGES
    from vo3rl.rl.advantages import ADVANTAGE_ESTIMATORS
    from vo3rl.rl.losses import POLICY_LOSSES
    from vo3rl.train.losses import LOSSES

    expected = {
        LOSSES: {"sft"},
        POLICY_LOSSES: {"grpo", "gspo"},
        ADVANTAGE_ESTIMATORS: {"grpo", "grpo_no_std"},
        TOOLS: {"video_crop"},
        SAMPLE_FORMATS: {"seeker", "stgr", "verl", "mcq", "lvbench", "vstar", "samples"},
        SFT_FORMATS: {"seeker_sft", "stgr_sft", "chat"},
        STAGES: {"data", "tiny_model", "sft", "rl", "eval"},
    }
    for registry, names in expected.items():
        assert isinstance(registry, Registry)
        assert names <= set(registry.names()), registry.kind


def test_the_policy_loss_registers_explicitly_and_idempotently():
    import subprocess
    import sys

    from vo3rl.rl.policy_loss import policy_loss, register_rl_losses

    # A fresh interpreter: importing the RL loss module leaves the learner's registry alone.
    probe = ("import vo3rl.rl.policy_loss; from vo3rl.train.losses import LOSSES; "
             "assert LOSSES.names() == ('sft',), LOSSES.names()")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    fresh = Registry("loss")
    register_rl_losses(fresh)
    register_rl_losses(fresh)  # a second call in the same process is harmless
    assert fresh.get("policy") is policy_loss and fresh.names() == ("policy",)
