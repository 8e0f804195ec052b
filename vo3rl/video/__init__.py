"""Video I/O: one deterministic sampler shared by rollout and learner, budgets, and a decode-once cache."""
