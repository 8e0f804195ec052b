"""The recipe schema: dataclasses are the source of truth for every key a recipe may set.

A recipe YAML is merged onto these defaults; a key that is not declared here, a value of the wrong
type, or a required value (`???`) left unset is rejected before any work starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from vo3rl.model.tiny import TinyModelConfig

# Stages `vo3rl run` knows, in the order a pipeline runs them.
KNOWN_STAGES = ("data", "tiny_model", "sft", "rl", "eval")


@dataclass
class RunConfig:
    """What `vo3rl run` does and where it writes. `output_dir` is relative to the working directory."""

    name: str = "vo3rl"
    output_dir: str = "runs/${run.name}"
    seed: int = 0
    stages: list[str] = field(default_factory=lambda: ["data", "tiny_model"])
    log_level: str = "INFO"


@dataclass
class ModelConfig:
    """The policy. `path` is an HF directory (a released checkpoint, or the tiny model the
    `tiny_model` stage builds there)."""

    path: str = "???"
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class DataConfig:
    """Dataset files and where their relative video paths start."""

    root: str = ""
    train: str = ""
    eval: str = ""


@dataclass
class WandbConfig:
    """Weights & Biases. `mode`: online | offline | disabled (offline needs no network or key)."""

    project: str = "vo3rl"
    name: Optional[str] = None
    group: Optional[str] = None
    mode: str = "offline"
    dir: str = "${run.output_dir}"


@dataclass
class RayConfig:
    """`address` None starts a local Ray instance in the process; "auto" or "ray://…" joins a cluster."""

    address: Optional[str] = None
    num_cpus: Optional[int] = None
    temp_dir: str = "/tmp/vo3rl-ray"


@dataclass
class Recipe:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    ray: RayConfig = field(default_factory=RayConfig)


def check_semantics(recipe: Recipe) -> list[str]:
    """Rules the type system cannot state. Returns one message per problem (empty when fine)."""
    problems = []
    for stage in recipe.run.stages:
        if stage not in KNOWN_STAGES:
            problems.append(f"run.stages: unknown stage {stage!r} (known: {', '.join(KNOWN_STAGES)})")
    if recipe.wandb.mode not in ("online", "offline", "disabled"):
        problems.append(f"wandb.mode: {recipe.wandb.mode!r} is not one of online, offline, disabled")
    try:
        recipe.model.tiny.validate()
    except ValueError as exc:
        problems.append(f"model.tiny: {exc}")
    return problems
