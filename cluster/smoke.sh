#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine, the tiny RL recipe submitted to it as a Ray job with two
# rollout engines on different nodes, and one of those nodes removed during a step. Exit 0 only when the
# job finished every step with the undisturbed run's data order and its checkpoints load; it prints the
# recovery time (node loss to the next completed step).
#
#   bash cluster/smoke.sh             (from the repository root or anywhere; ~10-15 min on 2 busy cores)
#
# Layout: a head with 0 CPUs (the job's driver only: it is never the node that is lost) and four worker
# nodes of 2 CPUs each, named by the custom resources smoke_node_1..4. The learner rank (1 CPU) and the
# engines (rollout.worker_cpus 1, spread by placement) land on the workers; the node killed hosts an
# engine and no learner rank, and the nodes left have room for the engine (or the whole run) again.
# Each node is its own process group (setsid), so removing a node is one SIGKILL of that group, and the
# exit trap kills every group this script started (no `ray stop`: it would stop other Ray instances).
# Ray rewrites a loopback node address to the host's own address for a multi-node cluster; the kernel
# routes that over `lo`, and the dashboard and job server listen on 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VO3RL_VENV:-$ROOT/.venv}
PORT=${SMOKE_PORT:-46100}            # the GCS; the other ports of node i are PORT + 100 * i + small offsets
STEPS=${SMOKE_STEPS:-3}
JOB_TIMEOUT_S=${SMOKE_JOB_TIMEOUT_S:-2400}
NODE_UP_S=180                        # per node: Ray itself gives a raylet 30 s to register
WORK=$(mktemp -d /tmp/vo3rl-smoke.XXXXXX)   # short: Ray's socket paths must stay under 107 bytes
DASHBOARD=http://127.0.0.1:$((PORT + 65))

export PATH="$VENV/bin:$PATH"        # the job's entrypoint (`vo3rl run`) runs with the head's environment
export RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1 WANDB_MODE=disabled VO3RL_PROGRESS=0 TOKENIZERS_PARALLELISM=false
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}

groups=()
submit_pid=
cleanup() {
    status=$?
    [ -n "$submit_pid" ] && kill "$submit_pid" 2>/dev/null || true
    for group in "${groups[@]}"; do kill -9 -- "-$group" 2>/dev/null || true; done
    [ "$status" = 0 ] && rm -rf "$WORK" || echo "smoke: kept $WORK (logs under it)"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

alive_nodes() {
    curl -s -m 10 "$DASHBOARD/api/v0/nodes?limit=100" | grep -o '"state": "ALIVE"' | wc -l || true
}

node_ports() {  # node_ports I: the per-node ports of node I (0: the head), so nodes on one host never collide
    local base=$((PORT + 100 * $1 + 100))
    echo "--node-manager-port=$base --object-manager-port=$((base + 1)) --dashboard-agent-listen-port=$((base + 2))" \
         "--dashboard-agent-grpc-port=$((base + 3)) --metrics-export-port=$((base + 4))" \
         "--runtime-env-agent-port=$((base + 5)) --min-worker-port=$((base + 10)) --max-worker-port=$((base + 99))"
}

start_node() {  # start_node I FLAG...: node I (0: the head) in its own process group, until it is alive
    # Retried: under load a raylet can miss the fixed 30 s Ray gives it to register with a busy GCS.
    local index=$1 attempt group deadline
    shift
    for attempt in 1 2 3; do
        # shellcheck disable=SC2046  # node_ports is meant to split into flags
        setsid ray start --block "$@" $(node_ports "$index") > "$WORK/node$index.log" 2>&1 &
        group=$!
        deadline=$((SECONDS + NODE_UP_S))
        while kill -0 "$group" 2>/dev/null && [ "$(alive_nodes)" -le "$index" ] && [ $SECONDS -lt $deadline ]; do
            sleep 2
        done
        if kill -0 "$group" 2>/dev/null && [ "$(alive_nodes)" -gt "$index" ]; then
            groups+=("$group")
            return 0
        fi
        kill -9 -- "-$group" 2>/dev/null || true
        echo "smoke: node $index did not come up (attempt $attempt; $WORK/node$index.log)"
    done
    exit 1
}

start=$SECONDS
start_node 0 --head --port="$PORT" --temp-dir="$WORK/ray" --num-cpus=0 --object-store-memory=400000000 \
    --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port=$((PORT + 65)) --ray-client-server-port=$((PORT + 66))
for i in 1 2 3 4; do  # one at a time, for the same reason
    start_node "$i" --address="127.0.0.1:$PORT" --num-cpus=2 --object-store-memory=400000000 \
        --resources="{\"smoke_node_$i\": 1}"
done
echo "smoke: 5 nodes up in $((SECONDS - start)) s (head + 4 workers, process groups ${groups[*]})"

cd "$ROOT"
overrides=(
    run.name=smoke "run.output_dir=$WORK/run" "run.stages=[data,tiny_model,rl]" wandb.mode=disabled
    data.synth.n_train_videos=4 data.synth.n_eval_videos=2
    "rl.init_from=''" "rl.steps=$STEPS" rl.prompts_per_step=2 rl.group_size=2 rl.save_every=1 rl.eval_samples=1
    rl.dynamic_sampling=false rl.log_trajectories_every=0 rl.rollout_workers=2 rl.reward_workers=1
    rl.max_auto_resumes=2 rollout.worker_cpus=1 rollout.max_new_tokens=24 rollout.max_turns=2
    rollout.eval_max_turns=2 learner.ranks=1 ray.address=auto ray.num_cpus=null ray.placement_timeout_s=300
)
timeout "$JOB_TIMEOUT_S" vo3rl submit recipes/tiny_cpu/rl.yaml "${overrides[@]}" \
    --address "$DASHBOARD" --submission-id "smoke-$$" > "$WORK/job.log" 2>&1 &
submit_pid=$!

python cluster/smoke_check.py kill "$WORK/run" "$DASHBOARD" "${groups[@]:1}" | tee "$WORK/kill.log"

job_status=0
wait "$submit_pid" || job_status=$?
submit_pid=
grep -E "auto-resume|restarting it|Traceback|Error" "$WORK/job.log" | grep -v "^\s" | head -20 || true
tail -n 3 "$WORK/job.log"
[ "$job_status" = 0 ] || { echo "smoke: the job failed (status $job_status; log $WORK/job.log)"; exit 1; }
python cluster/smoke_check.py verify "$WORK/run" "$STEPS"
echo "smoke: passed in $((SECONDS - start)) s; $(grep 'recovery time' "$WORK/kill.log")"
