"""The LLM judge hook against a tiny local OpenAI-compatible server."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vo3rl.data.schema import Sample, Task
from vo3rl.rewards import RewardConfig, score
from vo3rl.rewards.judge import JudgeConfig, judge_answer
from vo3rl.video.types import VideoRef


class FakeJudge(BaseHTTPRequestHandler):
    reply = "2"
    delay_s = 0.0
    raw = None
    failures: list = []  # HTTP statuses to answer first, one per request, before the real reply
    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeJudge.requests.append((self.path, body, self.headers.get("Authorization")))
        if FakeJudge.failures:
            self.send_response(FakeJudge.failures.pop(0))
            self.send_header("retry-after-ms", "1")  # the client honours it: the test does not wait
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        time.sleep(self.delay_s)
        payload = self.raw if self.raw is not None else json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": self.reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    FakeJudge.reply, FakeJudge.delay_s, FakeJudge.raw, FakeJudge.requests = "2", 0.0, None, []
    FakeJudge.failures = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_rating_is_scaled_and_request_is_chat_completions(judge_url, monkeypatch):
    monkeypatch.setenv("VO3RL_TEST_JUDGE_TOKEN", "t0k")
    cfg = JudgeConfig(url=judge_url, model="judge-7b", api_key_env="VO3RL_TEST_JUDGE_TOKEN")
    verdict = judge_answer("What happens?", "the cat sits", "a cat sat down", cfg, fallback=0.1)
    assert verdict.rating == 2 and verdict.score == pytest.approx(2 / 3) and verdict.used_judge
    assert verdict.correct()  # V-STAR: a rating of 2 or more is correct
    path, body, auth = FakeJudge.requests[0]
    assert path == "/v1/chat/completions" and body["model"] == "judge-7b" and auth == "Bearer t0k"
    assert "the cat sits" in body["messages"][0]["content"] and "a cat sat down" in body["messages"][0]["content"]


@pytest.mark.parametrize("reply, raw", [("I cannot tell", None), ("7", None), ("", b"not json"),
                                        ("", b'{"choices": []}')])
def test_unreadable_replies_fall_back(judge_url, reply, raw):
    FakeJudge.reply, FakeJudge.raw = reply, raw
    verdict = judge_answer("q", "r", "p", JudgeConfig(url=judge_url), fallback=0.25)
    assert verdict.score == 0.25 and verdict.rating is None and verdict.error
    assert not verdict.correct()  # 0.25 < 0.5


def test_timeout_falls_back(judge_url):
    FakeJudge.delay_s = 1.0
    start = time.perf_counter()
    verdict = judge_answer("q", "r", "p", JudgeConfig(url=judge_url, timeout_s=0.2, max_retries=0), fallback=0.6)
    assert verdict.score == 0.6 and "timed out" in verdict.error and "after 1 attempt" in verdict.error
    assert time.perf_counter() - start < 0.9


def test_no_token_sends_no_authorization_header(judge_url, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    verdict = judge_answer("q", "r", "p", JudgeConfig(url=judge_url), fallback=0.0)
    assert verdict.used_judge and FakeJudge.requests[0][2] is None


def test_transient_errors_are_retried_until_an_answer(judge_url):
    FakeJudge.failures, FakeJudge.reply = [503, 429], "3"
    verdict = judge_answer("q", "r", "p", JudgeConfig(url=judge_url, max_retries=2), fallback=0.0)
    assert verdict.rating == 3 and verdict.used_judge and len(FakeJudge.requests) == 3


def test_retries_run_out_then_the_rule_score_is_kept(judge_url):
    FakeJudge.failures = [500, 500, 500]
    verdict = judge_answer("q", "r", "p", JudgeConfig(url=judge_url, max_retries=1), fallback=0.4)
    assert verdict.score == 0.4 and verdict.error == "unreachable: HTTP 500 after 2 attempt(s)"
    assert len(FakeJudge.requests) == 2  # one attempt and one retry, no more


def test_a_client_error_is_not_retried(judge_url):
    FakeJudge.failures = [400]
    verdict = judge_answer("q", "r", "p", JudgeConfig(url=judge_url, max_retries=3), fallback=0.2)
    assert verdict.score == 0.2 and verdict.error == "unreachable: HTTP 400 (not retried)"
    assert len(FakeJudge.requests) == 1


@pytest.mark.parametrize("key, value", [("timeout_s", 0), ("max_retries", -1), ("max_retries", 1.5)])
def test_judge_settings_are_validated(key, value):
    with pytest.raises(ValueError, match=f"reward.judge.{key}"):
        JudgeConfig(url="http://x/v1", **{key: value}).validate()


def test_unreachable_server_and_disabled_judge_fall_back():
    closed = JudgeConfig(url="http://127.0.0.1:9/v1", timeout_s=0.5)
    assert judge_answer("q", "r", "p", closed, fallback=0.4).score == 0.4
    assert judge_answer("q", "r", "p", JudgeConfig(), fallback=0.3).error == "judge disabled"
    assert judge_answer("q", "r", None, closed, fallback=0.4).score == 0.0  # no answer, nothing to judge


def test_free_form_reward_uses_the_judge_when_configured(judge_url):
    FakeJudge.reply = "3"
    sample = Sample("f", "What happens?", "the cat sat down", VideoRef("/v.mp4"), Task.FREE_FORM)
    cfg = RewardConfig(judge=JudgeConfig(url=judge_url))
    result = score(sample, ["<think>x</think>\n<answer>a feline sits</answer>"], cfg)
    assert result.components["accuracy"] == 1.0 and result.components["accuracy_judge_used"] == 1.0
    assert result.components["accuracy_rouge1"] < 1.0  # the rule score is kept alongside
