"""Test-wide settings: nothing from the network, W&B offline, Ray without auth, short temp paths."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VO3RL_PROGRESS", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer():
    """The real Qwen2.5-VL tokenizer (built once: ~12 s)."""
    from vo3rl.model.tokenizer import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Qwen2.5-VL saved as an HF directory, shared by the session's tests."""
    from vo3rl.model.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))
