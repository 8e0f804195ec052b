"""The two halves of cluster/smoke.sh that are easier in Python than in bash.

    python cluster/smoke_check.py kill RUN_DIR DASHBOARD_URL PGID_1 ... PGID_N   # waits, then removes a node
    python cluster/smoke_check.py verify RUN_DIR STEPS                            # after the job: exit 0 or 1

`kill` waits (bounded) until the job's first RL checkpoint is complete and its next step is under way,
picks a worker node that hosts a rollout engine and no learner rank, SIGKILLs that node's process group
(its raylet, object store, agents and every actor on it) and prints the kill's wall-clock time (s since
the epoch). Worker node i (1-based) is the one with the custom resource `smoke_node_<i>`; PGID_i is the
process group its `ray start --block` leads. It then waits (bounded) for the next step to complete and
prints the recovery time: seconds from the kill to that step's record in metrics.jsonl.

`verify` checks what the job left: every step 1..STEPS recorded, each step's prompts the ones the data
order (`vo3rl.rl.groups.prompts_for`) gives an undisturbed run, every checkpoint complete and loadable
(the driver state's step, the safetensors, the newest one through transformers), and prints
the run's auto-resumes and rollout restarts.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

WAIT_CHECKPOINT_S = 1200.0  # the job's start: data, tiny model, two vLLM engines, learner, step 1
WAIT_RECOVERY_S = 900.0  # node death detection, engine (or whole run) restart, the redone step
SETTLE_S = 1.0  # after the checkpoint: the next step's rollout is running


def step_records(run_dir: Path) -> list[dict]:
    """metrics.jsonl's per-step records (those that name the step's prompts)."""
    path = run_dir / "rl" / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if "batch/prompt_ids" in row]


def _state_api(dashboard: str, kind: str) -> list[dict]:
    with urllib.request.urlopen(f"{dashboard}/api/v0/{kind}?limit=1000&detail=true", timeout=30) as reply:
        return json.loads(reply.read())["data"]["result"]["result"]


def smoke_nodes(dashboard: str) -> dict[str, int]:
    """{node id: i} of the live worker nodes named `smoke_node_<i>`."""
    found = {}
    for node in _state_api(dashboard, "nodes"):
        names = [key for key in node.get("resources_total", {}) if key.startswith("smoke_node_")]
        if names and node["state"] == "ALIVE":
            found[node["node_id"]] = int(names[0].rsplit("_", 1)[1])
    return found


def pick_victim(dashboard: str) -> int:
    """The worker node index hosting a live rollout engine and no learner rank."""
    nodes = smoke_nodes(dashboard)
    by_class: dict[str, set[int]] = {}
    for actor in _state_api(dashboard, "actors"):
        if actor["state"] == "ALIVE" and actor.get("node_id") in nodes:
            by_class.setdefault(actor["class_name"], set()).add(nodes[actor["node_id"]])
    engines, learners = by_class.get("RolloutWorker", set()), by_class.get("LearnerWorker", set())
    candidates = sorted(engines - learners)
    if not candidates:
        raise SystemExit(f"smoke: no node hosts an engine without a learner rank (engines {engines}, learner {learners})")
    return candidates[0]


def wait_for(what: str, ready, timeout_s: float, poll_s: float = 0.5):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(poll_s)
    raise SystemExit(f"smoke: {what} did not happen within {timeout_s:.0f} s")


def kill(run_dir: Path, dashboard: str, pgids: list[int]) -> None:
    first = run_dir / "rl" / "checkpoints" / "step_000001" / "vo3rl_checkpoint.json"
    wait_for("the first RL checkpoint", first.is_file, WAIT_CHECKPOINT_S)
    time.sleep(SETTLE_S)
    done = len(step_records(run_dir))
    victim = pick_victim(dashboard)
    killed_at = time.time()
    os.killpg(pgids[victim - 1], signal.SIGKILL)
    print(f"smoke: removed worker node {victim} (process group {pgids[victim - 1]}) during step {done + 1} "
          f"at {killed_at:.3f}", flush=True)
    wait_for("a step after the node loss", lambda: len(step_records(run_dir)) > done, WAIT_RECOVERY_S)
    print(f"smoke: recovery time {time.time() - killed_at:.1f} s (node loss to the next completed step)", flush=True)


def verify(run_dir: Path, steps: int) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vo3rl.config import load_recipe
    from vo3rl.rl.groups import prompts_for
    from vo3rl.train.checkpoint import hf_dir, latest_checkpoint, read_driver_state

    problems = []
    recipe = load_recipe(run_dir / "recipe.yaml")
    ids = [json.loads(line)["doc_id"] for line in Path(recipe.data.train).read_text().splitlines() if line.strip()]
    records = step_records(run_dir)
    for step in range(1, steps + 1):
        mine = [r for r in records if r["step"] == step]
        expected = [ids[i] for i in prompts_for(step - 1, 0, len(ids), recipe.rl.prompts_per_step, recipe.run.seed)]
        if not mine:
            problems.append(f"step {step} has no record")
        elif any(r["batch/prompt_ids"] != expected for r in mine):  # a step redone after a resume is logged twice
            problems.append(f"step {step} took {[r['batch/prompt_ids'] for r in mine]}, the data order says {expected}")
    checkpoints = run_dir / "rl" / "checkpoints"
    found = sorted(checkpoints.glob("step_*"))
    for path in found:
        try:
            state = read_driver_state(path)  # validates the marker too
            if int(state["step"]) != int(path.name.split("_")[1]):
                problems.append(f"{path.name}: driver state says step {state['step']}")
            from safetensors.torch import load_file

            shards = sorted(hf_dir(path).glob("*.safetensors"))
            if not shards or not all(load_file(str(shard)) for shard in shards):
                problems.append(f"{path.name}: no tensors")
        except Exception as exc:  # any failure to load is the finding
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
    newest = latest_checkpoint(checkpoints)
    if newest is None or newest.name != f"step_{steps:06d}":
        problems.append(f"the newest complete checkpoint is {newest}, not step_{steps:06d}")
    else:
        from transformers import Qwen2_5_VLForConditionalGeneration

        Qwen2_5_VLForConditionalGeneration.from_pretrained(hf_dir(newest))
    summary = json.loads((run_dir / "rl" / "summary.json").read_text())
    if summary.get("steps") != steps:
        problems.append(f"summary.json says {summary.get('steps')} steps")
    print(f"smoke: {len(records)} step records for {steps} steps, {len(found)} checkpoints loaded, "
          f"auto-resumes {summary.get('auto_resumes')} (from steps {summary.get('auto_resumed_from_steps')})")
    for problem in problems:
        print(f"smoke: FAIL {problem}")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "kill":
        kill(Path(argv[1]), argv[2].rstrip("/"), [int(p) for p in argv[3:]])
        return 0
    if len(argv) == 3 and argv[0] == "verify":
        return verify(Path(argv[1]), int(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
