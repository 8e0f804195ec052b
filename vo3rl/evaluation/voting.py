"""The test-time-scaling weights and vote, kept importable here for evaluation code: they live in
`vo3rl.agent.voting` because the rollout service (a lower layer) weighs and votes too."""
from vo3rl.agent.voting import FALLBACK_WEIGHT, MAX_CROPS, RATING_WEIGHTS, confidence_weight, parse_rating, vote

__all__ = ["FALLBACK_WEIGHT", "MAX_CROPS", "RATING_WEIGHTS", "confidence_weight", "parse_rating", "vote"]
