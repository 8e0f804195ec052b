"""The checks that need the registries and the lower packages, run on the resolved recipe with the
schema's own (`vo3rl.config.schema.check_semantics`) before any work starts: every name a recipe picks
from a registry exists, and the sampling presets it overrides are real ones."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from vo3rl.config.loader import RecipeError, load_recipe
from vo3rl.config.schema import Recipe
from vo3rl.data.readers import SAMPLE_FORMATS, SFT_FORMATS
from vo3rl.evaluation.benchmark_run import benchmark_folder, evaluation_identity, identity_conflict
from vo3rl.evaluation.benchmarks import BENCHMARKS
from vo3rl.rl.advantages import ADVANTAGE_ESTIMATORS
from vo3rl.rl.losses import POLICY_LOSSES
from vo3rl.train.checkpoint import model_folder
from vo3rl.video.budgets import resolved_presets


def _known(name: str, registry, key: str) -> list[str]:
    if name in registry:
        return []
    return [f"{key}: {name!r} is not one of {', '.join(sorted(registry))}"]


def registered_name_problems(recipe: Recipe) -> list[str]:
    """One message per name the recipe uses that no registry holds (empty when all are known)."""
    problems = [*_known(recipe.rl.advantage, ADVANTAGE_ESTIMATORS, "rl.advantage"),
                *_known(recipe.rl.loss.name, POLICY_LOSSES, "rl.loss.name"),
                *_known(recipe.data.format, SAMPLE_FORMATS, "data.format")]
    for index, stage in enumerate(recipe.sft.stages):
        problems += _known(stage.format, SFT_FORMATS, f"sft.stages.{index}.format")
    try:
        resolved_presets(recipe.video.presets)
    except ValueError as exc:
        problems.append(f"video.presets: {exc}")
    return problems


TRAINING_STAGES = ("sft", "rl")


def pipeline_problem(recipe: Recipe, allow_no_training: bool = False) -> str | None:
    """Why `vo3rl run` / `vo3rl submit` must not start `recipe.run.stages`, or None. A recipe with no
    stages says nothing to run; one whose stages train nothing (data, tiny_model, eval) runs only when
    asked (`--no-training`): a user who names a paper recipe means to train."""
    stages = list(recipe.run.stages)
    if not stages:
        return "run.stages = []: the recipe lists no stage to run (e.g. run.stages=[sft])"
    if not allow_no_training and not set(stages) & set(TRAINING_STAGES):
        return (f"run.stages = {stages}: no stage trains ({' or '.join(TRAINING_STAGES)}); pass --no-training "
                f"to run them anyway")
    return None


def _under(path: str, folder: str) -> bool:
    path, folder = Path(path).absolute(), Path(folder).absolute()
    return path == folder or folder in path.parents


def missing_inputs(recipe: Recipe) -> list[str]:
    """One message per file or model folder a stage of `recipe.run.stages` reads that neither exists nor
    is made by an earlier stage (data -> data.synth_dir, tiny_model -> model.path, sft -> sft.output_dir).
    Checked on this machine, so for `vo3rl run`, not for a job that runs elsewhere."""
    made: list[str] = []
    problems: list[str] = []

    def need(key: str, path: str, folder: bool = False) -> None:
        if not path or any(_under(path, m) for m in made):
            return
        there = Path(path).is_dir() if folder else Path(path).is_file()
        if folder and there and not (Path(path) / "config.json").is_file():
            inside = model_folder(path)
            hint = f" (a vo3rl checkpoint: its model is {str(inside)!r})" if inside != Path(path) else ""
            problems.append(f"{key} = {path!r}: the folder holds no config.json (not a model checkpoint){hint}")
        elif not there:
            what = "model folder" if folder else "file"
            hint = " (nothing is downloaded: give a local checkpoint folder)" if folder else ""
            problems.append(f"{key} = {path!r}: no such {what}{hint}")

    for stage in recipe.run.stages:
        if stage == "sft":
            need("model.path", recipe.model.path, folder=True)
            for index, sft_stage in enumerate(recipe.sft.stages):
                need(f"sft.stages.{index}.train", sft_stage.train)
            if recipe.sft.gen_eval:
                need("sft.gen_eval_file", recipe.sft.gen_eval_file)
        elif stage == "rl":
            if recipe.rl.init_from:
                need("rl.init_from", recipe.rl.init_from, folder=True)
            else:
                need("model.path", recipe.model.path, folder=True)
            need("data.train", recipe.data.train)
            need("data.eval", recipe.data.eval)
        made += {"data": [recipe.data.synth_dir], "tiny_model": [recipe.model.path],
                 "sft": [recipe.sft.output_dir]}.get(stage, [])
    return list(dict.fromkeys(problems))


def eval_inputs(recipe: Recipe, model: str | None = None, benchmark: str | None = None,
                tts: dict | None = None) -> tuple[Path, list[str]]:
    """The folder `vo3rl eval` loads (`--model`, default `model.path`; a vo3rl checkpoint `step_N` means
    its `hf/`) and one message per problem: an unknown benchmark, a missing model or `data.eval`, a
    benchmark folder holding another evaluation's rows, test-time scaling (`tts`: {"n", "vote"}) with
    fewer than one answer or another protocol than open_o3."""
    named = model or recipe.model.path
    key = "--model" if model else "model.path"
    folder = model_folder(named)
    problems = [] if benchmark is None else _known(benchmark, BENCHMARKS, "--benchmark")
    if not (folder / "config.json").is_file():
        what = "no such folder" if not folder.is_dir() else "the folder holds no config.json (not a model checkpoint)"
        problems.append(f"{key} = {named!r}: {what} (give an HF model folder or a vo3rl checkpoint step_N)")
    if not Path(recipe.data.eval).is_file():
        problems.append(f"data.eval = {recipe.data.eval!r}: no such file")
    if tts and tts["n"] < 1:
        problems.append(f"--tts {tts['n']}: test-time scaling needs at least 1 answer per sample")
    if tts and recipe.rollout.protocol != "open_o3":
        problems.append(f"--tts rates Open-o3 evidence crops: it needs rollout.protocol open_o3, "
                        f"not {recipe.rollout.protocol!r}")
    if tts and benchmark == "vstar":
        problems.append("--tts with --benchmark vstar: V-STAR's chained conversations are scored one greedy "
                        "answer per question; test-time scaling is defined for single answers")
    if benchmark in BENCHMARKS and not problems:  # a rerun resumes its own rows, never another model's
        conflict = identity_conflict(benchmark_folder(recipe.run.output_dir, benchmark),
                                     evaluation_identity(folder, recipe.data.eval, tts))
        problems += [conflict] if conflict else []
    return folder, problems


def placement_problems(recipe: Recipe, local_gpus: int | None = None) -> list[str]:
    """Why the actors of the recipe's stages cannot all be placed on the local Ray this run would start
    (`ray.address` null), instead of waiting for resources forever; empty for a cluster address (its
    size is known only there). `local_gpus`: the machine's GPU count (default: torch's)."""
    if recipe.ray.address:
        return []
    if local_gpus is None:
        import torch

        local_gpus = torch.cuda.device_count()
    stages, rl, rollout = set(recipe.run.stages), recipe.rl, recipe.rollout
    problems = []
    if "rl" in stages:
        rollout_cpus = rl.rollout_workers * rollout.worker_cpus
        if recipe.ray.num_cpus is not None and rollout_cpus >= recipe.ray.num_cpus:
            problems.append(f"rl.rollout_workers x rollout.worker_cpus = {rollout_cpus:g} CPUs: must be fewer than "
                            f"ray.num_cpus = {recipe.ray.num_cpus} (the learner ranks need some)")
        holders = recipe.learner.ranks + (1 if rl.loss.kl_coef else 0)
        colocated = recipe.placement.colocated  # the engines run on the ranks' GPUs
        gpus = holders * rl.learner_gpus + (0 if colocated else rl.rollout_workers * rollout.worker_gpus)
        if gpus > local_gpus:
            engines = ("the rollout engines on their GPUs (placement.layout colocated)" if colocated else
                       f"{rl.rollout_workers} rollout x rollout.worker_gpus = {rollout.worker_gpus:g}")
            problems.append(f"the RL actors reserve {gpus:g} GPUs ({holders} learner x rl.learner_gpus = "
                            f"{rl.learner_gpus:g}, {engines}): this machine has {local_gpus}")
    if "sft" in stages and recipe.learner.ranks > 1 and recipe.learner.ranks * recipe.sft.learner_gpus > local_gpus:
        problems.append(f"learner.ranks x sft.learner_gpus = {recipe.learner.ranks * recipe.sft.learner_gpus:g} "
                        f"GPUs: this machine has {local_gpus}")
    return problems


def load_checked_recipe(path: str | Path | None, overrides: Sequence[str] = ()) -> Recipe:
    """`vo3rl.config.load_recipe` plus the registry checks above. Raises RecipeError (one line)."""
    recipe = load_recipe(path, overrides)
    problems = registered_name_problems(recipe)
    if problems:
        raise RecipeError("; ".join(problems))
    return recipe
