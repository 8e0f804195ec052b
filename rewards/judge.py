"""An optional LLM judge for free-form answers (and V-STAR's "what" accuracy), spoken to over an
OpenAI-compatible chat-completions endpoint (e.g. a model served with `vllm serve`).

The judge rates 0–3; a rating of 2 or more counts as correct. Any failure (no server, timeout, HTTP
error, unreadable reply) falls back to the rule score the caller supplies, and says why.
"""
from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
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


def _request(cfg: JudgeConfig, prompt: str) -> str:
    body = {
        "model": cfg.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": cfg.max_tokens,
        "temperature": 0.0,
    }
    headers = {"Content-Type": "application/json"}
    token = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        cfg.url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=cfg.timeout_s) as response:
        reply = json.loads(response.read(1 << 20))
    return str(reply["choices"][0]["message"]["content"])


def judge_answer(question: str, reference: str, prediction: str | None, cfg: JudgeConfig, fallback: float) -> JudgeVerdict:
    """Ask the judge to rate `prediction` against `reference`; on any failure return `fallback`."""
    if not cfg.enabled:
        return JudgeVerdict(fallback, error="judge disabled")
    if prediction is None:
        return JudgeVerdict(0.0, error="no answer to judge")
    prompt = cfg.prompt.replace("{question}", _clip(question)).replace("{reference}", _clip(reference))
    prompt = prompt.replace("{prediction}", _clip(prediction))
    try:
        content = _request(cfg, prompt)
    except (urllib.error.URLError, OSError) as exc:  # refused, timed out, HTTP error status
        return JudgeVerdict(fallback, error=f"unreachable: {exc}")
    except Exception as exc:  # a server that answers but not in the chat-completions shape
        return JudgeVerdict(fallback, error=f"bad reply: {type(exc).__name__}: {exc}")
    match = re.search(r"[0-9]", content[:200])
    if match is None or int(match.group(0)) > MAX_RATING:
        return JudgeVerdict(fallback, error=f"no rating 0-{MAX_RATING} in reply {content[:80]!r}")
    rating = int(match.group(0))
    return JudgeVerdict(rating / MAX_RATING, rating=rating)
