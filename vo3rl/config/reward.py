"""Recipe keys of the reward (`reward:` in a recipe): the protocol, the term weights per task / data
type, Video-o3's bonus constants, Open-o3's temporal and spatial constants, and the optional judge.
The reward functions themselves are in `vo3rl.rewards`."""
from __future__ import annotations

from dataclasses import dataclass, field

from vo3rl.config.names import DATA_TYPES, PROTOCOLS, TASKS
from vo3rl.config.rules import raise_first_broken

DEFAULT_JUDGE_PROMPT = (
    "You grade answers to questions about a video. Compare the candidate answer with the reference "
    "answer and rate how well it matches in meaning (wording does not matter):\n"
    "3 = same meaning, 2 = mostly right with a minor slip, 1 = partly right, 0 = wrong or unrelated.\n"
    "Reply with the single digit only.\n\n"
    "Question: {question}\nReference answer: {reference}\nCandidate answer: {prediction}\nRating:"
)


@dataclass
class JudgeConfig:
    """`url` is the API base (e.g. "http://127.0.0.1:8000/v1"); empty disables the judge.
    `api_key_env` names an environment variable holding a bearer token, if the server wants one.
    `timeout_s` bounds each attempt (seconds); `max_retries` more attempts follow a connection error,
    a timeout, 408/409/429 or a 5xx, so one answer waits at most about (max_retries + 1) * timeout_s
    plus the client's backoff before it falls back to the rule score."""

    url: str = ""
    model: str = ""
    timeout_s: float = 10.0
    max_retries: int = 2
    max_tokens: int = 4
    api_key_env: str = ""
    prompt: str = DEFAULT_JUDGE_PROMPT

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def validate(self) -> None:
        raise_first_broken("reward.judge", [
            (self.timeout_s > 0, "timeout_s", self.timeout_s, "> 0 (seconds per attempt)"),
            (isinstance(self.max_retries, int) and self.max_retries >= 0, "max_retries", self.max_retries,
             "an integer >= 0"),
        ])


TERMS = ("format", "accuracy", "bonus", "temporal", "spatial")


def _unit_weights() -> dict[str, dict[str, float]]:
    return {"default": {term: 1.0 for term in TERMS}}


@dataclass
class RewardConfig:
    """Recipe keys of the reward. `weights["default"]` applies to every sample; a key equal to a task
    ("mcq", "temporal_grounding", …) or a data type ("single_clue_tool", …) overrides some of its
    terms, data type last. A weight of 0 turns a term off (it is then not computed)."""

    protocol: str = "video_o3"
    weights: dict[str, dict[str, float]] = field(default_factory=_unit_weights)
    # Video-o3 trajectory bonus
    decay_lambda: float = 0.05
    bonus_base: float = 0.5
    clue_weight: float = 0.5
    single_no_tool_bonus: float = 0.75
    multi_no_tool_bonus: float = 0.5
    min_segment_s: float = 1.0
    strategies: list[str] = field(default_factory=lambda: ["coarse", "medium", "fine"])
    # Open-o3 temporal and spatial terms
    gate_tau_s: float = 3.0
    sigma_start: float = 4.0
    sigma_end: float = 1.0
    sigma_anneal_fraction: float = 0.75
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def validate(self) -> None:
        """Raise ValueError on an unknown protocol or term name (a typo in a recipe must be loud)."""
        self.judge.validate()
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"reward protocol {self.protocol!r} is not one of {PROTOCOLS}")
        scopes = {"default", *TASKS, *DATA_TYPES}
        for key, terms in self.weights.items():
            if key not in scopes:
                raise ValueError(f"reward weights[{key!r}]: not 'default', a task or a data type; known: {sorted(scopes)}")
            unknown = set(terms) - set(TERMS)
            if unknown:
                raise ValueError(f"reward weights[{key!r}] names unknown terms {sorted(unknown)}; known: {TERMS}")
