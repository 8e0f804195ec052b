"""`rl.weight_sync: process_group`: the learner's weights to the rollout engines over a process group.

The object-store path (`rl.weight_sync: object_store`, the default, in `vo3rl.rl.step.sync_weights`)
moves the full state dict learner -> driver -> object store -> every worker: three copies through Ray,
all on the driver's node. Here learner rank 0 broadcasts it straight to every engine worker over a
torch.distributed group of their own (`vo3rl.rollout.weight_group`: gloo, or NCCL when the learner and
the engines all have GPUs), in buckets, and each engine loads it in place with the same vLLM reload.

    sync = ProcessGroupSync(learner_group, rollout_group, bucket_mb=256)  # forms the group (blocks)
    sync.sync(version=7)                                                  # one broadcast, loaded in place
    sync.close()

Membership: group rank 0 is learner rank 0, then each rollout worker's engine takes one rank per
tensor-parallel worker, in worker order. A rollout worker that `RolloutGroup` restarts is not a member:
it gets the newest weights once through the object store (`_restarted`) and the group is formed again
before the next sync. A member lost *during* a sync fails that sync (after the group's timeout at worst),
as a lost worker fails an object-store update.
"""
from __future__ import annotations

import ray

from vo3rl.log import get_logger

log = get_logger(__name__)
TIMEOUT_S = 600.0  # a collective waits this long for a missing member before it fails


def weight_sync_backend(learner_gpus: float, rollout_gpus: float) -> str:
    """NCCL only when both sides hold GPUs (NCCL moves CUDA tensors only); gloo works everywhere."""
    return "nccl" if learner_gpus > 0 and rollout_gpus > 0 else "gloo"


class ProcessGroupSync:
    """The `WeightSync` service of `vo3rl.rl.step` over a `LearnerGroup` and a `RolloutGroup`.
    `bucket_mb`: the largest bucket in MiB (a larger tensor travels alone). `last`: the latest sync's
    figures from rank 0 (`bytes`, `buckets`, `tensors`, `seconds` of the broadcast, `export_s`)."""

    def __init__(self, learner, rollout, bucket_mb: int = 256, backend: str = "gloo", timeout_s: float = TIMEOUT_S):
        self.learner, self.rollout = learner, rollout
        self.bucket_bytes = int(bucket_mb) << 20
        self.backend, self.timeout_s = backend, float(timeout_s)
        self.last: dict = {}
        self._synced = False  # the engines hold weights the learner sent (not those they started from)
        self._stale = False  # a member was replaced: form the group again before the next sync
        rollout.on_restart = self._restarted
        self._form()

    def _form(self) -> None:
        per_engine = int(self.rollout.cfg.tensor_parallel_size)
        world_size = 1 + per_engine * len(self.rollout.workers)
        rank0 = self.learner.workers[0]
        host, port = ray.get(rank0.open_weight_sync.remote(world_size, self.timeout_s))
        joins = [rank0.join_weight_sync.remote(self.backend)]
        joins += [worker.join_weight_sync.remote(host, port, 1 + i * per_engine, world_size, self.backend,
                                                 self.timeout_s)
                  for i, worker in enumerate(self.rollout.workers)]
        ray.get(joins)
        self._stale = False
        log.info("weight-sync group formed: %d members (%s) at %s:%d", world_size, self.backend, host, port)

    def _leave(self) -> None:
        """Every member leaves (a local teardown each; no collective), errors ignored: a member may be gone."""
        refs = [self.learner.workers[0].leave_weight_sync.remote()]
        refs += [worker.leave_weight_sync.remote() for worker in self.rollout.workers]
        for ref in refs:
            try:
                ray.get(ref)
            except Exception as err:  # noqa: BLE001 - a dead member has nothing to tear down
                log.debug("weight-sync leave: %s", err)

    def sync(self, version: int) -> None:
        """The learner's weights into every engine, in place, as weight `version`."""
        if self._stale:
            self._leave()
            self._form()
        sends = self.learner.on_all_ranks_async("send_weights", self.bucket_bytes)
        receives = [worker.receive_weights.remote(version) for worker in self.rollout.workers]
        results = ray.get(sends + receives)
        self.last = results[0]
        self.rollout.weights_synced(version)
        self._synced = True

    def _restarted(self, index: int, worker) -> None:
        """A restarted rollout worker: the newest weights once through the object store (it is not in
        the group; the group is formed again at the next sync). Until the first sync the weights it
        loaded at start are the newest. In an overlapped `rl.mode` the learner may have updated since the
        last sync, so the weights can be one version newer than the version they are labelled with."""
        self._stale = True
        if self._synced:
            log.warning("rollout worker %d restarted: its weights go through the object store once", index)
            ray.get(worker.update_weights.remote(ray.put(self.learner.export_weights()), self.rollout.weight_version))

    def close(self) -> None:
        self.rollout.on_restart = None
        self._leave()
