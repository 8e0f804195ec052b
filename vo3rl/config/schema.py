"""The recipe schema: dataclasses are the source of truth for every key a recipe may set.

A recipe YAML is merged onto these defaults; a key that is not declared here, a value of the wrong
type, or a required value (`???`) left unset is rejected before any work starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from vo3rl.config.learner import LearnerConfig, SFTConfig
from vo3rl.config.model import TinyModelConfig
from vo3rl.config.names import KNOWN_STAGES
from vo3rl.config.placement import PlacementConfig, colocation_problems
from vo3rl.config.prompts import PromptTemplates
from vo3rl.config.reward import RewardConfig
from vo3rl.config.rl import RLConfig
from vo3rl.config.rules import raise_first_broken
from vo3rl.config.rollout import RolloutConfig
from vo3rl.config.synth import SynthConfig

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass
class RunConfig:
    """What `vo3rl run` does and where it writes. `output_dir` is relative to the working directory."""

    name: str = "vo3rl"
    output_dir: str = "runs/${run.name}"
    seed: int = 0
    stages: list[str] = field(default_factory=list)  # what `vo3rl run` runs; a recipe lists its own
    log_level: str = "INFO"


@dataclass
class ModelConfig:
    """The policy. `path` is an HF directory (a released checkpoint, or the tiny model the
    `tiny_model` stage builds there)."""

    path: str = "???"
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class DataConfig:
    """Dataset files and where their relative video paths start. The `data` stage writes the synthetic
    set (`synth`) to `synth_dir`."""

    root: str = ""
    train: str = ""
    eval: str = ""
    format: str = "seeker"  # of `train` / `eval`: seeker, stgr, verl, mcq, lvbench, vstar, charades_sta, samples
    synth_dir: str = "${run.output_dir}/data"
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass
class VideoConfig:
    """Sampling. `presets` overrides fields of the named presets of vo3rl/video/budgets.py, e.g.
    `{global: {max_frames: 16, max_tokens: 1024}}` for a tiny model; the rollout, the learner and
    evaluation all sample through the same resolved presets. `cache_mb` bounds each process's
    decode-once cache."""

    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_mb: int = 512


@dataclass
class WandbConfig:
    """Weights & Biases. `mode`: online | offline | disabled (offline needs no network or key); an
    environment `WANDB_MODE` wins over it (so a cluster's secret-bearing job can switch a recipe
    online). `dir`: where W&B writes its files ("" = each stage's output folder)."""

    project: str = "vo3rl"
    name: Optional[str] = None
    group: Optional[str] = None
    mode: str = "offline"
    dir: str = ""


@dataclass
class RayConfig:
    """`address` None starts a local Ray instance in the process; "auto" or "ray://…" joins a cluster.
    `log_to_driver`: the workers' logs (rollout engines, learner ranks, reward workers) are printed by
    the driver too; false keeps them in Ray's session logs only. `placement_timeout_s`: how long the
    learner ranks and the rollout workers each wait for the cluster to place them (seconds; an autoscaler may need minutes) before
    the run stops with what it asked for and what the cluster has."""

    address: Optional[str] = None
    num_cpus: Optional[int] = None
    temp_dir: str = "/tmp/vo3rl-ray"
    log_to_driver: bool = True
    placement_timeout_s: float = 600.0

    def validate(self) -> None:
        raise_first_broken("ray", [
            (self.num_cpus is None or self.num_cpus >= 1, "num_cpus", self.num_cpus, ">= 1 (or null: all of them)"),
            (self.placement_timeout_s > 0, "placement_timeout_s", self.placement_timeout_s, "> 0 (seconds)"),
        ])


@dataclass
class Recipe:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    prompts: PromptTemplates = field(default_factory=PromptTemplates)
    reward: RewardConfig = field(default_factory=RewardConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)


def check_semantics(recipe: Recipe) -> list[str]:
    """Rules the type system cannot state that need nothing but the recipe. Returns one message per
    problem (empty when fine). Names that registries or lower packages define (losses, advantage
    estimators, data formats, sampling presets) are checked by `vo3rl.orchestration.checks`."""
    problems = []
    for stage in recipe.run.stages:
        if stage not in KNOWN_STAGES:
            problems.append(f"run.stages: unknown stage {stage!r} (known: {', '.join(KNOWN_STAGES)})")
    if recipe.wandb.mode not in ("online", "offline", "disabled"):
        problems.append(f"wandb.mode: {recipe.wandb.mode!r} is not one of online, offline, disabled")
    if recipe.run.log_level.upper() not in LOG_LEVELS:
        problems.append(f"run.log_level = {recipe.run.log_level!r}: must be one of {', '.join(LOG_LEVELS)}")
    if recipe.reward.protocol != recipe.rollout.protocol:
        problems.append(f"reward.protocol = {recipe.reward.protocol!r} and rollout.protocol = "
                        f"{recipe.rollout.protocol!r}: must be the same (the reward parses what the rollout asks for)")
    for section, validate in (("model.tiny", recipe.model.tiny.validate), ("data.synth", recipe.data.synth.validate),
                              ("prompts", recipe.prompts.validate), ("reward", recipe.reward.validate),
                              ("rollout", recipe.rollout.validate), ("learner", recipe.learner.validate),
                              ("sft", recipe.sft.validate), ("rl", recipe.rl.validate), ("ray", recipe.ray.validate),
                              ("placement", recipe.placement.validate)):
        try:
            validate()
        except ValueError as exc:  # messages that already start with their key keep it once
            message = str(exc)
            problems.append(message if message.startswith(f"{section}.") or message.startswith(f"{section}:")
                            else f"{section}: {message}")
    if not problems:  # the layout's rules read the other sections' values, so only once those are sound
        problems += colocation_problems(recipe.placement, recipe.rl, recipe.learner.ranks, recipe.rollout)
    return problems
