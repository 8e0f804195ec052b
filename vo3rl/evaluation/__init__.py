"""Evaluation: greedy episodes scored with the rewards, and the records every evaluation keeps."""
