"""Joining or starting Ray the same way in every driver."""
from __future__ import annotations

import os

from vo3rl.config.schema import RayConfig
from vo3rl.log import get_logger

log = get_logger(__name__)


def start_ray(cfg: RayConfig) -> None:
    """Join the cluster at `cfg.address`, or start a local Ray when it is None. A local instance runs
    without token auth (Ray 2.60 turns it on by default, and nothing outside this machine talks to it)
    in a short temp dir (Ray's unix socket paths must stay under 107 bytes)."""
    import ray

    if ray.is_initialized():
        return
    if cfg.address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=cfg.num_cpus, _temp_dir=cfg.temp_dir, include_dashboard=False,
                 log_to_driver=cfg.log_to_driver)
        log.info("started a local Ray with %s CPUs", cfg.num_cpus or "all")
    else:
        ray.init(address=cfg.address, log_to_driver=cfg.log_to_driver)
        log.info("joined Ray at %s", cfg.address)
