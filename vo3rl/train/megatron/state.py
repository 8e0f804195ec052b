"""The Megatron learner's optimizer state in a checkpoint, in the FSDP2 learner's layout: DCP tensors
under HF parameter names (`optimizer.<HF name>.{exp_avg, exp_avg_sq, step}`, and `model.<HF name>`
for the fp32 master weights when hf/ is not fp32), param groups as JSON lists of HF names. Adam's
moments share their parameters' shapes, so `weights.py` maps them as it maps the weights: gathered
from the tensor-parallel ranks and written whole by rank 0 alone; each rank reads them back whole and
keeps its shard, so any tensor-parallel degree resumes any other.
"""
from __future__ import annotations

from pathlib import Path

import torch

from vo3rl.train import checkpoint_state
from vo3rl.train.checkpoint import CheckpointError
from vo3rl.train.megatron.parallel import gather_full_state
from vo3rl.train.megatron.weights import TextShape, hf_to_megatron, megatron_to_hf, partition_dim, shard

MOMENTS = ("exp_avg", "exp_avg_sq")


def full_shapes(named_params, tp: int) -> dict:
    """Meta tensors of each (Megatron name, local parameter)'s full, unsharded shape."""
    out = {}
    for name, param in named_params:
        size = list(param.shape)
        dim = partition_dim(name)
        if dim is not None:
            size[dim] *= tp
        out[name] = torch.empty(size, device="meta")
    return out


def hf_param_groups(policy, optimizer, shape: TextShape, tp: int) -> list[list[str]]:
    """The HF names of each optimizer param group's parameters (several for a fused Megatron tensor)."""
    names = {id(p): n for n, p in policy.named_parameters()}
    return [list(megatron_to_hf(full_shapes([(names[id(p)], p) for p in group["params"]], tp), shape,
                                tied_alias=False)) for group in optimizer.param_groups]


def save_optimizer(folder: str | Path, policy, optimizer, shape: TextShape, layout, masters: dict | None) -> dict:
    """Write the optimizer state (and `masters`, the HF-named fp32 weights, when given) into `folder`.
    Collective over the ranks of replica 0's tensor-parallel group; rank 0 writes. Returns the record
    for trainer_state.json: {"metadata_sha256", "param_groups", "fresh"} (the hash on rank 0 only)."""
    fresh = not optimizer.state
    named = [(n, p) for n, p in policy.named_parameters() if p.requires_grad]
    step = next((s["step"] for s in optimizer.state.values() if "step" in s), torch.tensor(0.0))
    hf_state: dict = {}
    if layout.dp_rank == 0:
        for moment in MOMENTS:
            local = {n: optimizer.state[p][moment] if p in optimizer.state else torch.zeros_like(p) for n, p in named}
            for hf_name, tensor in megatron_to_hf(gather_full_state(local), shape, tied_alias=False).items():
                hf_state.setdefault(hf_name, {})[moment] = tensor.detach().cpu()
    groups = [{**{k: list(v) if isinstance(v, tuple) else v for k, v in group.items() if k != "params"},
               "params": names} for group, names in zip(optimizer.param_groups, hf_param_groups(policy, optimizer, shape, layout.tp))]
    digest = None
    if layout.rank == 0:
        for entry in hf_state.values():
            entry["step"] = step.detach().cpu().clone()
        tensors = {"optimizer": hf_state} | ({"model": masters} if masters is not None else {})
        digest = checkpoint_state.save_tensors(folder, tensors, collective=False)
    return {"metadata_sha256": digest, "param_groups": groups, "fresh": fresh}


def load_optimizer(folder: str | Path, policy, optimizer, shape: TextShape, layout, saved: dict,
                   with_masters: bool) -> dict | None:
    """Restore the optimizer state `save_optimizer` wrote (`saved`: its record) into this rank's
    shards; returns the full HF-named master weights when `with_masters` (else None). Every rank reads
    on its own. Raises CheckpointError on a metadata file not the recorded one, or on other parameters."""
    metadata = checkpoint_state.read_metadata(folder, saved.get("metadata_sha256"))
    current = hf_param_groups(policy, optimizer, shape, layout.tp)
    if [g.get("params") for g in saved.get("param_groups") or []] != current:
        raise CheckpointError(f"optimizer state in {folder} is for other parameters (was freeze_vision changed?)")
    named = [(n, p) for n, p in policy.named_parameters() if p.requires_grad]
    hf_shapes = megatron_to_hf(full_shapes(named, layout.tp), shape, tied_alias=False)
    wanted = {"optimizer": {name: {**{m: torch.empty(t.shape) for m in MOMENTS}, "step": torch.tensor(0.0)}
                            for name, t in hf_shapes.items()}}
    if with_masters:
        wanted["model"] = _master_shapes(metadata)
    checkpoint_state.load_tensors(folder, wanted, metadata, collective=False)
    for group, saved_group in zip(optimizer.param_groups, saved["param_groups"]):
        group.update({k: tuple(v) if isinstance(v, list) else v for k, v in saved_group.items() if k != "params"})
    optimizer.state.clear()
    if not saved.get("fresh"):
        step = next(iter(wanted["optimizer"].values()))["step"]
        moments = {m: shard(hf_to_megatron({n: e[m] for n, e in wanted["optimizer"].items()}, shape, layout.tp),
                            layout.tp, layout.tp_rank) for m in MOMENTS}
        for name, param in named:
            optimizer.state[param] = {"step": step.clone(), **{m: moments[m][name].to(param.device).clone() for m in MOMENTS}}
    return wanted.get("model")


def _master_shapes(metadata) -> dict:
    """Empty tensors for every `model.<HF name>` entry the checkpoint holds."""
    return {key[len("model."):]: torch.empty(tuple(entry.size)) for key, entry in metadata.state_dict_metadata.items()
            if key.startswith("model.")}
