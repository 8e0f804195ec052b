# The two commands of the README. Each sets up .venv on first use (scripts/bootstrap.sh: idempotent,
# well under a second when nothing changed).
.PHONY: demo test setup

export HF_HUB_OFFLINE := 1
export RAY_AUTH_MODE := disabled

setup:
	bash scripts/bootstrap.sh

demo: setup
	.venv/bin/vo3rl run recipes/tiny_cpu/demo.yaml
	.venv/bin/vo3rl report runs/tiny-demo

test: setup
	.venv/bin/python -m pytest $(PYTEST_ARGS)
