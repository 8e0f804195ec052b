"""RL maths, free of Ray and I/O: group advantages, policy losses, KL estimators, dynamic sampling.

Estimators and losses are registered by name so a recipe picks them (`rl.advantage`, `rl.loss.name`).
"""
