#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv.
# Idempotent: when pyproject.toml, the constraints and this script are unchanged since the last
# successful run, it returns in well under a second.
#
#   VO3RL_EXTRAS   extras to install (default: cpu,dev). With `gpu` (the GPU install:
#                  VO3RL_EXTRAS=gpu,dev bash scripts/bootstrap.sh) the pins are constraints-gpu.txt,
#                  torch is the registry's CUDA build and none of the CPU fix-ups below run.
#   VO3RL_PYTHON   interpreter to build the venv from (default: python3.11, else python3)
#   VO3RL_BOOTSTRAP_PLAN=1  print the constraints file and fix-ups this call would use, then exit
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"
extras=${VO3RL_EXTRAS:-cpu,dev}
flavour=cpu
if [[ ",$extras," == *,gpu,* ]]; then
    flavour=gpu
    if [[ ",$extras," == *,cpu,* ]]; then
        echo "[bootstrap] error: VO3RL_EXTRAS=$extras asks for both cpu and gpu; pick one" >&2
        exit 2
    fi
fi
constraints=constraints-$flavour.txt
if [[ "${VO3RL_BOOTSTRAP_PLAN:-}" == 1 ]]; then
    echo "extras=$extras constraints=$constraints cpu_fixups=$([[ $flavour == cpu ]] && echo yes || echo no)"
    exit 0
fi
stamp="$venv/.vo3rl-stamp"
want=$(cat pyproject.toml "$constraints" scripts/bootstrap.sh scripts/torchvision_cpu_hook.py | sha256sum | cut -c1-16)-$extras

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

py=${VO3RL_PYTHON:-$(command -v python3.11 || command -v python3)}
"$py" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"vo3rl needs Python 3.11, {sys.executable} is {sys.version.split()[0]}"'
echo "[bootstrap] building $venv with $("$py" --version) (extras: $extras)" >&2
[[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "uv==0.13.*"

# uv ignores pip's configuration: on CPU hand it the same local wheel folders and extra indexes (this
# is where the machine keeps its CPU torch build). Not for the GPU install: a local 2.13.0+cpu wheel
# satisfies `torch==2.13.0` and would win over the registry's CUDA build.
uv_args=()
if [[ $flavour == cpu ]]; then
    for links in $("$py" -m pip config get global.find-links 2>/dev/null || true); do
        uv_args+=(--find-links "$links")
    done
    for index in $("$py" -m pip config get global.extra-index-url 2>/dev/null || true); do
        uv_args+=(--extra-index-url "$index")
    done
fi
export UV_INDEX_STRATEGY=unsafe-best-match UV_HTTP_TIMEOUT=300 UV_LINK_MODE=copy
"$venv/bin/uv" pip install --python "$venv/bin/python" "${uv_args[@]}" \
    --constraint "$constraints" -e ".[${extras}]"
if [[ $flavour == gpu ]]; then
    echo "$want" > "$stamp"
    echo "[bootstrap] ready (GPU): $venv" >&2
    exit 0
fi

# CPU fixes. torchaudio and torchcodec arrive as CUDA builds that crash on import with CPU torch;
# vLLM skips audio without them.
"$venv/bin/uv" pip uninstall --python "$venv/bin/python" torchaudio torchcodec 2>/dev/null || true
# torchvision has no CPU build: a hook registers its operator schemas before it loads.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp scripts/torchvision_cpu_hook.py "$site/_vo3rl_torchvision_cpu_hook.py"
echo "import _vo3rl_torchvision_cpu_hook as _h; _h.install()" > "$site/_vo3rl_torchvision_cpu_hook.pth"

echo "$want" > "$stamp"
echo "[bootstrap] ready: $venv" >&2
