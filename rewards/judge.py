"""An optional LLM judge for free-form answers (and V-STAR's "what" accuracy), spoken to over an
OpenAI-compatible chat-completions endpoint (e.g. a model served with `vllm serve`) through the
`openai` client: `judge.timeout_s` per attempt, `judge.max_retries` more attempts on connection
errors, timeouts, 408/409/429 and 5xx, with the client's backoff (it honours `Retry-After`).

The judge rates 0–3; a rating of 2 or more counts as correct. Any failure (no server, timeout, HTTP
error, unreadable reply) falls back to the rule score the caller supplies, and says why.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from vo3rl.config.reward import JudgeConfig

MAX_PROMPT_FIELD_CHARS = 4000
MAX_RATING = 3

@dataclass(frozen=True)
class JudgeVerdict:
    """`score` in [0, 1]: rating / 3 when the judge answered, else the fallback rule score."""

    score: float
    rating: int | None = None
    error: str | None = None

    @property
    def used_judge(self) -> bool:
        return self.rating is not None

    def correct(self, fallback_threshold: float = 0.5) -> bool:
        """V-STAR's accuracy: rating ≥ 2; without a rating, the fallback score ≥ `fallback_threshold`."""
        if self.rating is not None:
            return self.rating >= 2
        return self.score >= fallback_threshold


def _clip(text: str) -> str:
    return str(text)[:MAX_PROMPT_FIELD_CHARS]


@functools.lru_cache(maxsize=8)
def _client(url: str, token: str, timeout_s: float, max_retries: int):
    """One `openai.OpenAI` per judge setting (its connection pool is reused across calls); the
    package loads on first use, so scoring without a judge never imports it."""
    import openai

    # A placeholder key keeps the client from reading OPENAI_API_KEY (the judge is not OpenAI's
    # service); `_request` omits the header it would make from it.
    return openai.OpenAI(base_url=url, api_key=token or "no-token", timeout=timeout_s, max_retries=max_retries)


def _request(cfg: JudgeConfig, prompt: str) -> str:
    import openai

    token = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""  # read on each call
    client = _client(cfg.url.rstrip("/"), token, float(cfg.timeout_s), int(cfg.max_retries))
    # No token: no Authorization header at all, as a server started without --api-key expects.
    headers = None if token else {"Authorization": openai.Omit()}
    reply = client.chat.completions.create(
        model=cfg.model, messages=[{"role": "user", "content": prompt}], max_tokens=cfg.max_tokens, temperature=0.0,
        extra_headers=headers)
    return reply.choices[0].message.content or ""


def _failure(exc: Exception, cfg: JudgeConfig) -> str:
    """Why the call failed, in words a log reader can act on."""
    import openai

    attempts = f"after {cfg.max_retries + 1} attempt(s)"
    if isinstance(exc, openai.APITimeoutError):
        return f"unreachable: timed out ({cfg.timeout_s} s per attempt) {attempts}"
    if isinstance(exc, openai.APIConnectionError):
        return f"unreachable: connection failed {attempts}: {exc.__cause__ or exc}"
    if isinstance(exc, openai.APIStatusError):
        retried = exc.status_code in (408, 409, 429) or exc.status_code >= 500  # the client's retry rule
        return f"unreachable: HTTP {exc.status_code} {attempts if retried else '(not retried)'}"
    return f"bad reply: {type(exc).__name__}: {exc}"  # a server that answers, but not in the chat-completions shape


def judge_answer(question: str, reference: str, prediction: str | None, cfg: JudgeConfig, fallback: float) -> JudgeVerdict:
    """Ask the judge to rate `prediction` against `reference`; on any failure return `fallback`."""
    if not cfg.enabled:
        return JudgeVerdict(fallback, error="judge disabled")
    if prediction is None:
        return JudgeVerdict(0.0, error="no answer to judge")
    prompt = cfg.prompt.replace("{question}", _clip(question)).replace("{reference}", _clip(reference))
    prompt = prompt.replace("{prediction}", _clip(prediction))
    try:
        content = str(_request(cfg, prompt))
    except Exception as exc:  # the judge is optional: no failure of it may stop the scoring
        return JudgeVerdict(fallback, error=_failure(exc, cfg))
    match = re.search(r"[0-9]", content[:200])
    if match is None or int(match.group(0)) > MAX_RATING:
        return JudgeVerdict(fallback, error=f"no rating 0-{MAX_RATING} in reply {content[:80]!r}")
    rating = int(match.group(0))
    return JudgeVerdict(rating / MAX_RATING, rating=rating)
