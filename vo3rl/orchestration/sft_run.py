"""`vo3rl sft RECIPE`: the SFT stage's learner, in process for one rank or as a Ray rank group, handed
to the SFT driver (`vo3rl.sft.driver.run_sft`)."""
from __future__ import annotations

from vo3rl.config.schema import Recipe
from vo3rl.orchestration.eval_run import evaluate_model
from vo3rl.orchestration.ray_setup import start_ray
from vo3rl.sft.driver import run_sft
from vo3rl.train.contract import PolicyLearner
from vo3rl.workers.learner import LearnerGroup, make_learner


def sft_learner(recipe: Recipe, total_steps: int, tokenizer) -> PolicyLearner:
    """One rank trains in this process (no Ray); more ranks are Ray actors sharing `ray.num_cpus`.
    `learner.backend` picks the learner (FSDP2 or Megatron) either way."""
    if recipe.learner.ranks == 1:
        return make_learner(recipe.model.path, recipe.learner, total_steps, tokenizer)
    start_ray(recipe.ray)
    cpus = max(1, (recipe.ray.num_cpus or recipe.learner.ranks) // recipe.learner.ranks)
    return LearnerGroup(recipe.model.path, recipe.learner, total_steps, cpus_per_rank=cpus,
                        gpus_per_rank=recipe.sft.learner_gpus, placement_timeout_s=recipe.ray.placement_timeout_s)


def train(recipe: Recipe) -> dict:
    """Run the recipe's SFT stages, evaluated before and after as RL and `vo3rl eval` evaluate (rollout
    and reward workers on Ray); returns the SFT summary."""
    return run_sft(recipe, lambda total_steps, tokenizer: sft_learner(recipe, total_steps, tokenizer),
                   lambda model, samples, path: evaluate_model(recipe, model, samples, path))
