"""`RolloutService.tts` against the scripted engine (tests/test_rollout_loop.py): N sampled answers,
rating turns only for answers with 1..10 crops, sent greedy with the crops as videos, weights and the
vote under both rules, engine refusals of a rating turn weighed as unparsable."""
import pytest
from test_rollout_loop import PRESETS, EngineRefusal, ScriptedEngine, make_sample, video  # noqa: F401 (fixture)

from vo3rl.agent.rating import RATING_MAX_NEW_TOKENS
from vo3rl.config.rollout import RolloutConfig
from vo3rl.rollout.service import RolloutService
from vo3rl.video.cache import DecodeCache


def box(t, x=4):
    return f"<obj>cup</obj><box>[{x}, 4, {x + 20}, 30]</box>at<t>{t}</t>s"


ANSWERS = {
    0: "<think>" + box(2) + box(5, 30) + "</think>\n<answer>A</answer>",  # 2 crops, rated 2
    1: "<think>" + box(2) + "</think>\n<answer>B</answer>",               # 1 crop, rated 0
    2: "<think>I just know</think>\n<answer>B</answer>",                  # no crop: not asked
    3: "<think>" + box(1) * 11 + "</think>\n<answer>B</answer>",          # 11 crops: not asked
}


def is_rating(request):
    return bool(request.videos) and request.videos[0] is None


def script(ratings):
    def turn(key, request):
        return ratings[key[1]] if is_rating(request) else ANSWERS[key[1]]
    return turn


def tts_service(tokenizer, ratings):
    engine = ScriptedEngine(tokenizer, script(ratings))
    cfg = RolloutConfig(protocol="open_o3", tool_threads=0, temperature=1.0)
    return RolloutService(engine, tokenizer, cfg, presets=PRESETS, cache=DecodeCache()), engine


def test_confidence_vote_rates_only_answers_with_a_few_crops(tokenizer, video):
    svc, engine = tts_service(tokenizer, {0: "2", 1: "0"})
    batch = svc.tts([make_sample(video, "s1"), make_sample(video, "s2")], 4, "confidence")
    assert [r.sample_id for r in batch.results] == ["s1", "s2"]
    for result in batch.results:
        assert result.answers == ["A", "B", "B", "B"] and result.crops == [2, 1, 0, 11]
        assert result.ratings == [2, 0, None, None] and result.weights == [1.0, 0.2, 0.2, 0.2]
        assert result.prediction == "A"  # 1.0 against 0.6; the majority says B
        assert len(result.trajectories) == 4 and result.texts[0] == ANSWERS[0]
    answer_turns = [(req, greedy, seed) for _, req, greedy, seed in engine.requests if not is_rating(req)]
    rating_turns = [(key, req, greedy) for key, req, greedy, _ in engine.requests if is_rating(req)]
    assert len(answer_turns) == 8 and not any(greedy for _, greedy, _ in answer_turns)
    assert len({seed for _, _, seed in answer_turns}) == 8  # every answer sampled with its own seed
    assert sorted(key for key, _, _ in rating_turns) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for key, request, greedy in rating_turns:
        assert greedy and request.max_new_tokens == RATING_MAX_NEW_TOKENS and request.stop == ()
        (clip,) = request.clips  # all crops in one video: an Open-o3 engine takes one per prompt
        assert len(clip.frames) == 2 * (2 if key[1] == 0 else 1)  # one 2-frame patch per crop
        pad = tokenizer.convert_tokens_to_ids("<|video_pad|>")
        assert request.context.count(pad) == sum(clip.n_vision_tokens for clip in request.clips)
        text = tokenizer.decode(request.context)
        assert "What colour is shown?" in text and "B. blue" in text and text.endswith("<|im_start|>assistant\n")
    assert batch.stats["rating_turns"] == 4 and batch.stats["answers"] == 8


def test_majority_vote_asks_nothing_and_counts_answers(tokenizer, video):
    svc, engine = tts_service(tokenizer, {})
    (result,) = svc.tts([make_sample(video)], 4, "majority").results
    assert result.weights == [1.0] * 4 and result.ratings == [None] * 4 and result.prediction == "B"
    assert not any(is_rating(request) for _, request, _, _ in engine.requests)


def test_a_refused_or_unreadable_rating_weighs_the_fallback(tokenizer, video):
    svc, _ = tts_service(tokenizer, {0: EngineRefusal(), 1: "I cannot tell"})
    batch = svc.tts([make_sample(video)], 2, "confidence")
    (result,) = batch.results
    assert result.ratings == [None, None] and result.weights == [0.2, 0.2]
    assert result.prediction == "A"  # a tie: the answer sampled first
    assert batch.failed == {"rating:rejected": 1}


def test_tts_refuses_other_protocols_and_rules(tokenizer, video):
    engine = ScriptedEngine(tokenizer, script({}))
    svc = RolloutService(engine, tokenizer, RolloutConfig(), presets=PRESETS, cache=DecodeCache())
    with pytest.raises(ValueError, match="open_o3"):
        svc.tts([make_sample(video)], 2)
    svc, _ = tts_service(tokenizer, {})
    with pytest.raises(ValueError, match="vote"):
        svc.tts([make_sample(video)], 2, "loudest")
    with pytest.raises(ValueError, match="n >= 1"):
        svc.tts([make_sample(video)], 0)
