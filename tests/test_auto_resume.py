"""Auto-resume after a lost learner (`vo3rl.orchestration.auto_resume`, `rl.max_auto_resumes`): which
errors earn a resume (a pure function of the exception), the bounded retry loop with light fakes, the
placement strategy per role. Milliseconds; no Ray cluster, no vLLM."""
import pytest
from ray.exceptions import (ActorDiedError, ActorUnavailableError, NodeDiedError, ObjectLostError, OwnerDiedError,
                            RayTaskError, ReferenceCountingAssertionError, WorkerCrashedError)

from vo3rl.config import RecipeError, load_recipe
from vo3rl.orchestration.auto_resume import lost_worker, with_auto_resume


def task_error(cause: BaseException) -> BaseException:
    """What `ray.get` raises when a remote call raised `cause`."""
    return RayTaskError("train_step", "Traceback: ...", cause).as_instanceof_cause()


@pytest.mark.parametrize("error", [
    ActorDiedError(),  # the rank's process died, or its node did
    ActorUnavailableError("the actor is temporarily unavailable: Socket closed", b"\x00" * 16),
    NodeDiedError("node 1 died"),
    WorkerCrashedError(),
    ObjectLostError("00" * 28, "owner", "call site"),
    OwnerDiedError("00" * 28, "owner", "call site"),
])
def test_lost_actors_nodes_and_objects_earn_a_resume(error):
    assert lost_worker(error)
    assert lost_worker(task_error(error))  # a remote call that lost the actor it called


def test_a_lost_worker_raised_from_is_still_lost():
    try:
        try:
            raise ActorDiedError()
        except ActorDiedError as lost:
            raise RuntimeError("the learner step failed") from lost
    except RuntimeError as wrapped:
        assert lost_worker(wrapped)


@pytest.mark.parametrize("error", [
    ValueError("bad batch"), KeyError("loss"), RuntimeError("CUDA error"), RecipeError("rl.steps: -1"),
    ReferenceCountingAssertionError("00" * 28, "owner", "call site"),
])
def test_bugs_never_earn_a_resume(error):
    assert not lost_worker(error)
    assert not lost_worker(task_error(error))  # a ValueError inside the learner is ours too


def test_an_actor_whose_constructor_raised_is_a_bug():
    died = ActorDiedError()
    died._actor_init_failed = True  # as Ray sets it when the creation task raised
    assert not lost_worker(died)


def test_an_error_raised_while_handling_a_lost_worker_is_ours():
    try:
        try:
            raise ActorDiedError()
        except ActorDiedError:
            raise ValueError("a bug in the handler")  # implicit context, not `from`
    except ValueError as bug:
        assert not lost_worker(bug)


class FlakyRun:
    """An RL run that loses its learner at the given steps (once per mention) and checkpoints every step."""

    def __init__(self, steps: int, lose_at: list[int], error=ActorDiedError):
        self.steps, self.lose_at, self.error = steps, list(lose_at), error
        self.checkpoint = 0  # the step of the newest complete checkpoint
        self.starts: list[int] = []  # the step each attempt started at
        self.trained: list[int] = []

    def attempt(self) -> dict:
        self.starts.append(self.checkpoint)
        for step in range(self.checkpoint, self.steps):
            if step in self.lose_at:
                self.lose_at.remove(step)
                raise self.error()
            self.trained.append(step)
            self.checkpoint = step + 1
        return {"steps": self.checkpoint}


def test_the_loop_resumes_from_the_newest_checkpoint_and_counts_its_resumes(caplog):
    run = FlakyRun(steps=5, lose_at=[1, 3])
    with caplog.at_level("WARNING"):
        summary, resumed_from = with_auto_resume(run.attempt, max_resumes=2, restart_step=lambda: run.checkpoint)
    assert summary == {"steps": 5} and resumed_from == [1, 3] and run.starts == [0, 1, 3]
    assert run.trained == [0, 1, 2, 3, 4]  # no step skipped, none trained twice (each was checkpointed)
    assert "auto-resume 1/2 from step 1" in caplog.text and "auto-resume 2/2 from step 3" in caplog.text


def test_resumes_are_bounded_and_zero_fails_at_once():
    run = FlakyRun(steps=5, lose_at=[0, 0, 0])
    with pytest.raises(ActorDiedError):
        with_auto_resume(run.attempt, max_resumes=2, restart_step=lambda: run.checkpoint)
    assert run.starts == [0, 0, 0]  # a run with no checkpoint yet restarts from step 0
    once = FlakyRun(steps=2, lose_at=[1])
    with pytest.raises(ActorDiedError):
        with_auto_resume(once.attempt, max_resumes=0, restart_step=lambda: once.checkpoint)
    assert once.starts == [0]


def test_a_bug_is_raised_without_a_resume():
    run = FlakyRun(steps=3, lose_at=[1], error=lambda: ValueError("bad batch"))
    with pytest.raises(ValueError, match="bad batch"):
        with_auto_resume(run.attempt, max_resumes=2, restart_step=lambda: run.checkpoint)
    assert run.starts == [0]


def test_max_auto_resumes_is_typed_and_validated():
    model = "model.path=/models/m"
    assert load_recipe(None, [model]).rl.max_auto_resumes == 2
    assert load_recipe(None, [model, "rl.max_auto_resumes=0"]).rl.max_auto_resumes == 0
    with pytest.raises(RecipeError, match="max_auto_resumes"):
        load_recipe(None, [model, "rl.max_auto_resumes=-1"])
    with pytest.raises(RecipeError, match="max_auto_resumes"):
        load_recipe(None, [model, "rl.max_auto_resumes=often"])


def test_rollout_engines_spread_and_learner_ranks_pack(monkeypatch):
    from vo3rl.workers import placement

    asked = []

    class Ready:
        def ready(self):
            return None

    monkeypatch.setattr(placement, "placement_group", lambda bundles, strategy: asked.append(strategy) or Ready())
    monkeypatch.setattr(placement.ray, "get", lambda ref, timeout: None)
    for role in ("rollout", "learner", "reward"):
        placement.place(role, 2, {"CPU": 1}, 1.0, "hint")
    placement.place("rollout", 2, {"CPU": 1}, 1.0, "hint", strategy="STRICT_SPREAD")
    assert asked == ["SPREAD", "PACK", "PACK", "STRICT_SPREAD"]
    with pytest.raises(ValueError, match="SCATTER"):
        placement.place("rollout", 2, {"CPU": 1}, 1.0, "hint", strategy="SCATTER")


def test_train_releases_the_lost_attempt_and_resumes_at_its_last_checkpoint(tmp_path, monkeypatch):
    """`rl_run.train` around stand-ins for the run: the learner is lost during step 3 (index 2), after
    the checkpoint of step 2; the next attempt opens the run at that checkpoint and redoes step 3."""
    from collections import Counter
    from types import SimpleNamespace

    from vo3rl.orchestration import rl_run

    recipe = load_recipe(None, ["model.path=/models/m", f"run.output_dir={tmp_path}", "rl.steps=4",
                                "rl.save_every=1", "rl.eval_samples=0", "rl.log_trajectories_every=0"])
    opened, released, ran = [], [], []
    lose = [2]

    class Runner:
        def run(self, step):
            if step in lose:
                lose.remove(step)
                raise task_error(ActorDiedError())
            ran.append(step)
            return SimpleNamespace(metrics={"reward/total": float(step)}, scored=[])

        def pause(self):
            pass

    class Run:
        def __init__(self, checkpoint):
            self.step = int(checkpoint.name.split("_")[1]) if checkpoint else 0
            self.eval_samples, self.steps, self.recipe = [], None, recipe
            self.services = SimpleNamespace(rollout=SimpleNamespace(skipped=Counter(), failed=Counter()))
            self.metrics = SimpleNamespace(wandb_id="w1", log=lambda *a, **k: None, close=lambda: None)
            self.prompts = self.driver_state = None

        def save(self):
            return tmp_path / "rl" / "checkpoints" / f"step_{self.step:06d}"

        def release(self):
            released.append(self.step)

        def close(self):
            pass

    def open_run(recipe_, checkpoint, wandb_id):
        opened.append((checkpoint.name if checkpoint else None, wandb_id))
        return Run(checkpoint)

    monkeypatch.setattr(rl_run, "open_rl_run", open_run)
    monkeypatch.setattr(rl_run, "step_runner", lambda *args: Runner())
    monkeypatch.setattr(rl_run, "read_driver_state", lambda path: {"step": int(path.name.split("_")[1])})
    summary = rl_run.train(recipe)
    assert opened == [(None, None), ("step_000002", "w1")]  # the second attempt continues the W&B run
    assert released == [2] and ran == [0, 1, 2, 3]
    assert summary["auto_resumes"] == 1 and summary["auto_resumed_from_steps"] == [2]
    assert summary["reward_by_step"] == [0.0, 1.0, 2.0, 3.0] and summary["steps"] == 4  # step 3 counted once
    assert (tmp_path / "rl" / "summary.json").is_file()
