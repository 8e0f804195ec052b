"""`vo3rl submit RECIPE [key=value …] --address http://HEAD:8265`: run a recipe as a Ray job on a cluster.

The recipe is resolved and validated here first, so a typo fails on the laptop, not after the upload.
The job's entrypoint is `vo3rl run RECIPE key=value …` in the cluster's environment (an image with
vo3rl installed: see cluster/README.md); the working directory (recipes, local data manifests) is
uploaded, without the virtualenv, runs, checkpoints and videos.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from vo3rl.commands.common import add_no_training_argument

HELP = "submit a recipe as a Ray job to a cluster (validates the recipe first; streams logs unless --no-wait)"

UPLOAD_EXCLUDES = [".venv/", "runs/", ".git/", "wandb/", "**/__pycache__/", "*.mp4", "*.safetensors", "*.pt"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML (relative to the working directory)")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="overrides passed to the job")
    parser.add_argument("--address", default=None,
                        help="the cluster's job server, e.g. http://head:8265 (default: $RAY_ADDRESS)")
    parser.add_argument("--working-dir", default=".", help="folder uploaded as the job's working directory")
    parser.add_argument("--submission-id", default=None, help="a name for the job (default: generated)")
    parser.add_argument("--no-wait", action="store_true", help="return once submitted instead of streaming logs")
    add_no_training_argument(parser)


def job_request(args: argparse.Namespace) -> dict:
    """The keyword arguments of `JobSubmissionClient.submit_job` for these arguments."""
    entrypoint = shlex.join(["vo3rl", "run", args.recipe, *args.overrides,
                             *(["--no-training"] if getattr(args, "no_training", False) else [])])
    runtime_env = {"working_dir": args.working_dir, "excludes": UPLOAD_EXCLUDES,
                   "env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}}
    return {"entrypoint": entrypoint, "runtime_env": runtime_env, "submission_id": args.submission_id}


def run(args: argparse.Namespace) -> int:
    import asyncio

    from vo3rl.orchestration.checks import load_checked_recipe, pipeline_problem

    recipe = load_checked_recipe(args.recipe, args.overrides)  # RecipeError -> one line, exit 2
    problem = pipeline_problem(recipe, args.no_training)
    if problem:
        print(f"vo3rl submit: error: {problem}", file=sys.stderr)
        return 2
    if recipe.ray.address is None:
        print("vo3rl submit: note: the recipe has ray.address null; the job will start its own Ray inside the "
              "cluster's entrypoint process instead of using the cluster (set ray.address=auto)", file=sys.stderr)
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(args.address)
    job = client.submit_job(**job_request(args))
    print(f"submitted {job}: {job_request(args)['entrypoint']}")
    if args.no_wait:
        return 0

    async def stream() -> None:
        async for lines in client.tail_job_logs(job):
            print(lines, end="")

    asyncio.run(stream())
    status = client.get_job_status(job)
    print(f"job {job}: {status}")
    return 0 if status == JobStatus.SUCCEEDED else 1
