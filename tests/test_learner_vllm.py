"""A learner checkpoint is an HF directory vLLM serves: load it and generate from a video."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from learner_fixtures import trajectory, write_colour_mp4

from vo3rl.config.learner import LearnerConfig
from vo3rl.train.checkpoint import hf_dir

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).parent / "scripts" / "vllm_generate.py"


def test_saved_checkpoint_generates_in_vllm(tiny_model_dir, tokenizer, tmp_path):
    from vo3rl.train.learner import Learner

    video = write_colour_mp4(str(tmp_path / "v.mp4"))
    traj = trajectory(tokenizer, video)
    learner = Learner(tiny_model_dir, LearnerConfig(lr=1e-3, warmup_ratio=0.0), tokenizer=tokenizer)
    learner.train_step([traj], global_tokens=int(traj.loss_mask().sum()))
    path = hf_dir(learner.save_checkpoint(tmp_path / "step_1", with_optimizer=False))
    done = subprocess.run([sys.executable, str(SCRIPT), str(path), video, "4"], capture_output=True, text=True,
                          timeout=540, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # vLLM logs to stdout too; the script's result is the one line holding its JSON.
    (line,) = [ln for ln in done.stdout.splitlines() if '{"prompt_tokens"' in ln]
    result = json.loads(line[line.index("{"):])
    assert len(result["generated"]) == 8
    assert result["video_pad_tokens"] == 2 * (84 // 28) * (112 // 28)  # 4 frames -> 2 temporal patches
