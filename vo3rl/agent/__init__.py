"""The agent protocol: prompt templates, parsers for what the model writes, the tool registry with the
video-crop tool, and the `Trajectory` record that rollout, reward and learner share."""
