"""A one-rank learner in the calling process, with the same methods as `workers.learner.LearnerGroup`,
so drivers run without Ray when `learner.ranks` is 1."""
from __future__ import annotations

from vo3rl.train.batch import n_trained_tokens
from vo3rl.train.config import LearnerConfig
from vo3rl.train.learner import Learner


class LocalLearnerGroup:
    def __init__(self, model_path: str, cfg: LearnerConfig, total_steps: int = 1, tokenizer=None):
        self.learner = Learner(model_path, cfg, total_steps, tokenizer)

    def train_step(self, trajectories: list, loss: str = "sft", loss_on: str = "assistant",
                   use_tdam: bool = False, extras: dict | None = None) -> dict:
        global_tokens = n_trained_tokens(trajectories, loss_on)
        metrics = self.learner.train_step(trajectories, global_tokens, loss, loss_on, use_tdam, extras)
        metrics["trained_tokens"] = global_tokens
        return metrics

    def logprobs(self, trajectories: list, with_entropy: bool = True, loss_on: str = "all", use_tdam: bool = False):
        return self.learner.logprobs(trajectories, with_entropy, loss_on, use_tdam)

    def reset_schedule(self, total_steps: int, lr: float | None = None, warmup_ratio: float | None = None) -> None:
        self.learner.reset_schedule(total_steps, lr, warmup_ratio)

    def use_tdam(self, ratio: float | None = None) -> bool:
        return self.learner.use_tdam(ratio)

    def save_checkpoint(self, path: str, with_optimizer: bool = True, extra: dict | None = None) -> str:
        return str(self.learner.save_checkpoint(path, with_optimizer, extra))

    def load_checkpoint(self, path: str, with_optimizer: bool = True) -> dict:
        return self.learner.load_checkpoint(path, with_optimizer)

    def export_weights(self) -> dict:
        return self.learner.export_weights()

    def shutdown(self) -> None:
        pass
