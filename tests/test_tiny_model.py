"""`vo3rl tiny-model` builds a Qwen2.5-VL that transformers and vLLM both load and run on a real video."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FRAME_H, FRAME_W = 56, 84  # multiples of 28: 2 x 3 vision tokens per 2-frame patch


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    """A real 2-second H.264 mp4 at 4 fps, written with PyAV."""
    import av

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = FRAME_W, FRAME_H, "yuv420p"
        for i in range(8):
            frame = np.full((FRAME_H, FRAME_W, 3), 30 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode(path, n):
    import decord

    reader = decord.VideoReader(str(path))
    idx = np.linspace(0, len(reader) - 1, n).round().astype(int)
    return reader.get_batch(idx.tolist()).asnumpy()


def test_saved_directory_is_complete(tiny_model_dir):
    names = {p.name for p in Path(tiny_model_dir).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= names
    config = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    assert config["video_token_id"] == 151656 and config["vision_start_token_id"] == 151652


def test_transformers_generates_from_video(tiny_model_dir, short_video):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    frames = decode(short_video, 4)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}],
        add_generation_prompt=True,
    )
    inputs = processor(text=[prompt], videos=[frames], return_tensors="pt")
    # frames arrive at multiples of 28 px, so the processor must not resize: 2 temporal patches
    # of (56/14) x (84/14) patches, i.e. 2 * 2 * 3 = 12 merged vision tokens
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 6]]
    assert int((inputs["input_ids"] == 151656).sum()) == 12
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 6


def test_same_seed_same_weights(tmp_path):
    from safetensors.torch import load_file

    from vo3rl.model.tiny import TinyModelConfig, build_tiny_model

    a = load_file(build_tiny_model(tmp_path / "a", TinyModelConfig(seed=3)) / "model.safetensors")
    b = load_file(build_tiny_model(tmp_path / "b", TinyModelConfig(seed=3)) / "model.safetensors")
    c = load_file(build_tiny_model(tmp_path / "c", TinyModelConfig(seed=4)) / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_invalid_shapes_are_rejected():
    from vo3rl.model.tiny import TinyModelConfig

    with pytest.raises(ValueError, match="mrope_section"):
        TinyModelConfig(text_hidden=128, text_heads=2, mrope_section=[4, 6, 6]).validate()


@pytest.mark.slow
def test_vllm_generates_from_video(tiny_model_dir, short_video):
    script = Path(__file__).parent / "scripts" / "vllm_generate.py"
    out = subprocess.run([sys.executable, str(script), str(tiny_model_dir), str(short_video), "4"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    tagged = [line for line in out.stdout.splitlines() if line.startswith("VO3RL_RESULT ")]
    assert len(tagged) == 1, out.stdout[-3000:]
    result = json.loads(tagged[0].split(" ", 1)[1])
    assert result["video_pad_tokens"] == 12  # vLLM expands the placeholder to the same count
    assert len(result["generated"]) == 8
