"""The learner's pure-torch logic (no Ray): batches from Trajectories, log-probs, losses, FSDP2,
checkpoints. `workers/learner.py` wraps it in a Ray actor per rank."""
