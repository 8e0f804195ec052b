"""`vo3rl submit`: the job it builds, validation before any network call, and a real submission to a
local Ray head started for the test."""
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from vo3rl.cli import build_parser
from vo3rl.commands.submit import job_request

REPO = Path(__file__).parents[1]


def test_job_request_runs_the_recipe_with_its_overrides():
    args = build_parser().parse_args(["submit", "recipes/tiny_cpu/demo.yaml", "run.seed=3", "run.name=a b",
                                      "--address", "http://h:8265"])
    request = job_request(args)
    assert request["entrypoint"] == "vo3rl run recipes/tiny_cpu/demo.yaml run.seed=3 'run.name=a b'"
    assert request["runtime_env"]["working_dir"] == "."
    assert ".venv/" in request["runtime_env"]["excludes"] and "runs/" in request["runtime_env"]["excludes"]


def test_a_recipe_that_trains_nothing_is_refused_unless_asked():
    args = build_parser().parse_args(["submit", "recipes/tiny_cpu/demo.yaml", "--address", "http://h:8265",
                                      "--no-training"])
    assert job_request(args)["entrypoint"].endswith(" --no-training")
    for extra, fragment in (([], "no stage trains"), (["run.stages=[]"], "lists no stage")):
        out = subprocess.run([sys.executable, "-m", "vo3rl.cli", "submit", "recipes/tiny_cpu/demo.yaml",
                              "run.stages=[data,tiny_model]", *extra, "--address", "http://127.0.0.1:1"],
                             capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 2 and fragment in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_a_bad_recipe_fails_locally_before_any_upload():
    out = subprocess.run([sys.executable, "-m", "vo3rl.cli", "submit", "recipes/tiny_cpu/demo.yaml", "run.sedd=1",
                          "--address", "http://127.0.0.1:1"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "unknown key 'run.sedd'" in out.stderr


@pytest.mark.slow
def test_submit_to_a_local_ray_head(tmp_path):
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    ray = str(Path(sys.executable).parent / "ray")
    # --block keeps the head's processes in this process group, so the test stops exactly them
    # (`ray stop` would stop every Ray on the machine).
    head = subprocess.Popen([ray, "start", "--head", "--block", "--port=6391", "--dashboard-port=8391",
                             "--num-cpus=1", "--temp-dir=/tmp/vo3rl-sub", "--include-dashboard=true",
                             "--disable-usage-stats"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:8391/api/version", timeout=2)
                break
            except OSError:
                assert head.poll() is None and time.time() < deadline, "the Ray head did not come up"
                time.sleep(1)
        out = subprocess.run([sys.executable, "-m", "vo3rl.cli", "submit", "recipes/tiny_cpu/demo.yaml",
                              "run.stages=[data]", "data.synth.n_train_videos=2", "data.synth.n_eval_videos=1",
                              f"run.output_dir={tmp_path}/job", "--address", "http://127.0.0.1:8391", "--no-training"],
                             capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "SUCCEEDED" in out.stdout
        assert (tmp_path / "job" / "recipe.yaml").is_file()  # the job ran `vo3rl run` on the cluster
        assert (tmp_path / "job" / "data" / "manifest.json").is_file()  # and its data stage, asked for explicitly
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
