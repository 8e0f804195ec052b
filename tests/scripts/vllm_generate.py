"""Load an HF directory in vLLM (CPU) and generate greedily from one video; print JSON to stdout.

Run as a script (vLLM's engine core spawns processes, which needs a __main__ guard):
    python vllm_generate.py MODEL_DIR VIDEO.mp4 [N_FRAMES]
"""
import json
import os
import sys

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
# vLLM logs to stdout too (even after we print): the result line carries this tag.
RESULT_TAG = "VO3RL_RESULT"


def main() -> None:
    import decord
    import numpy as np
    from vllm import LLM, SamplingParams

    model_dir, video = sys.argv[1], sys.argv[2]
    n_frames = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    reader = decord.VideoReader(video)
    fps = reader.get_avg_fps()
    indices = np.linspace(0, len(reader) - 1, n_frames).round().astype(int).tolist()
    frames = reader.get_batch(indices).asnumpy()
    metadata = {"fps": fps, "frames_indices": indices, "total_num_frames": len(reader),
                "duration": len(reader) / fps, "video_backend": "decord", "do_sample_frames": False}
    llm = LLM(model=model_dir, enforce_eager=True, max_model_len=2048, seed=0,
              limit_mm_per_prompt={"video": 1, "image": 0})
    prompt = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
              "<|vision_start|><|video_pad|><|vision_end|>What happens?<|im_end|>\n<|im_start|>assistant\n")
    params = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
    out = llm.generate([{"prompt": prompt, "multi_modal_data": {"video": [(frames, metadata)]}}], params)[0]
    print(RESULT_TAG, json.dumps({
        "prompt_tokens": len(out.prompt_token_ids),
        "video_pad_tokens": sum(1 for t in out.prompt_token_ids if t == 151656),
        "generated": list(out.outputs[0].token_ids),
    }))


if __name__ == "__main__":
    main()
