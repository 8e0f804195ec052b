"""Evaluation: greedy episodes scored with the rewards, the records every evaluation keeps, the
benchmarks' metrics (`metrics`) and test-time-scaling votes (`voting`)."""
from vo3rl.evaluation.metrics import mam_mlgm

__all__ = ["mam_mlgm"]
