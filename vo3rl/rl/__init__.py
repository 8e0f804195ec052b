"""RL, free of Ray and I/O: group advantages, policy losses, KL estimators, dynamic sampling, and the RL
step over typed services (`step.rl_step`). Starting Ray, placing workers and resuming are the
orchestration's (`vo3rl.orchestration.rl_run`).

Estimators and losses are registered by name so a recipe picks them (`rl.advantage`, `rl.loss.name`).
"""
