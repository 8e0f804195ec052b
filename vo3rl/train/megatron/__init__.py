"""The Megatron learner backend (`learner.backend: megatron`): Qwen2.5-VL's language decoder as a
megatron-core GPTModel (tensor parallel over gloo or NCCL), the HF vision tower beside it, behind the
same learner contract as FSDP2 (`vo3rl.train.contract.PolicyLearner`).

    layout.py        which rank holds which share (pure)
    weights.py       HF <-> Megatron state dicts, tensor-parallel shards (pure torch)
    cpu_patches.py   the three spots where megatron-core allocates on CUDA, moved to the CPU
    parallel.py      megatron's parallel state, gradient reduction and norm across ranks
    model.py         the policy module and its scored forward
    state.py         checkpoints in the FSDP2 layout (HF weights, HF-named optimizer state)
    learner.py       `MegatronLearner`

Importing this package imports nothing heavy; megatron-core loads with `model`, `parallel` and `learner`.
"""
