"""The learner contract is written once (`PolicyLearner`), and both learners keep it: the in-process
`Learner` and the Ray rank group `LearnerGroup` (checked on the class: starting it needs Ray)."""
import inspect

from vo3rl.config.learner import LearnerConfig
from vo3rl.train.contract import CONTRACT_METHODS, PolicyLearner

EXPECTED = ("train_step", "logprobs", "reset_schedule", "use_tdam", "save_checkpoint", "load_checkpoint",
            "export_weights", "shutdown")


def _parameters(cls, name: str) -> list[inspect.Parameter]:
    return list(inspect.signature(getattr(cls, name)).parameters.values())[1:]  # without self


def test_the_contract_has_every_method():
    assert CONTRACT_METHODS == EXPECTED
    for name in EXPECTED:
        assert getattr(PolicyLearner, name).__doc__, name  # each one says what it takes and returns


def test_the_rank_group_has_the_contract_signatures():
    from vo3rl.workers.learner import LearnerGroup, LearnerWorker

    for name in CONTRACT_METHODS:
        contract = _parameters(PolicyLearner, name)
        group = _parameters(LearnerGroup, name)
        assert [(p.name, p.default) for p in group] == [(p.name, p.default) for p in contract], name
    # The actor forwards generically: no per-method copies of the contract. Beyond that it has only
    # rank 0's part in the process-group weight sync (`vo3rl.workers.weight_sync`), which is no contract method.
    actor_methods = {n for n in vars(LearnerWorker.__ray_actor_class__) if not n.startswith("_")}
    weight_sync = {"open_weight_sync", "join_weight_sync", "send_weights", "leave_weight_sync"}
    assert actor_methods == {"call", "node_ip", "shutdown"} | weight_sync
    assert not weight_sync & set(CONTRACT_METHODS)


def test_the_in_process_learner_keeps_the_contract(tiny_model_dir, tokenizer):
    from vo3rl.train.learner import Learner

    learner = Learner(tiny_model_dir, LearnerConfig(), total_steps=1, tokenizer=tokenizer)
    assert isinstance(learner, PolicyLearner)
    for name in CONTRACT_METHODS:
        contract = _parameters(PolicyLearner, name)
        own = _parameters(Learner, name)
        assert [(p.name, p.default) for p in own[: len(contract)]] == [(p.name, p.default) for p in contract], name
        # Anything more is keyword-only with a default (train_step's `global_tokens`, for one rank of several).
        assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in own[len(contract):]), name
    assert [p.name for p in _parameters(Learner, "train_step")][len(_parameters(PolicyLearner, "train_step")):] \
        == ["global_tokens"]
