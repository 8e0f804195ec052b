"""Rollout on vLLM: many agent episodes at once, each one growing context, batched by the engine.

- `vo3rl.config.rollout.RolloutConfig`: the recipe's `rollout:` keys; `service.loop_config` its episode limits.
- `engine_inputs`: a context (token ids with expanded video-pad runs) as a vLLM prompt.
- `vllm_engine.VLLMEngine`: the stepping vLLM engine (turns in, finished turns out, weights in place).
- `episodes.run_episodes`: drives many episode loops (`vo3rl.agent.loop.episode`) over one stepping engine.
- `service.RolloutService`: samples × G -> Trajectory records, unreadable samples counted; what the Ray
  actor in `vo3rl.workers.rollout` hosts.
"""
