"""Joining a Ray cluster and placing actors on its nodes.

Ray is imported only here and only when a Ray executor is built, so a missing Ray is a
one-line error rather than an import failure of the whole package.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from synalign.errors import ConfigError, SynAlignError

RAY_MISSING = (
    "executor 'ray' needs Ray, which is not installed: pip install 'synalign[ray]' "
    "(or pip install 'ray>=2.9'), or set `executor` = \"local\""
)


def import_ray() -> Any:
    """The `ray` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def connect(address: str | None) -> Any:
    """Join the Ray cluster at `address` ('auto', HOST:PORT, ray://...); with None, the
    cluster named by $RAY_ADDRESS, else a Ray instance started on this machine. Nothing is
    done if this process is already connected."""
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = address or os.environ.get("RAY_ADDRESS") or "this machine"
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise SynAlignError(
                f"cannot connect to the Ray cluster at {where} ({detail}); start one with "
                '`ray start --head` and set ray_address = "auto" (or HOST:6379)'
            ) from None
    return ray


def check_ray() -> None:
    """Raise the one-line error now if Ray is missing, before any stage runs."""
    import_ray()


def cpu_nodes(ray: Any) -> list[str]:
    """The IDs of the alive nodes that have CPUs."""
    nodes = [
        n
        for n in ray.nodes()
        if n.get("Alive") and float((n.get("Resources") or {}).get("CPU", 0)) > 0
    ]
    return [str(n["NodeID"]) for n in nodes]


def placement(ray: Any, nodes: list[str], i: int) -> dict[str, Any]:
    """Actor options putting worker `i` on node `i mod n`: softly, so a full or lost node
    does not keep the worker from starting elsewhere."""
    if not nodes:
        return {}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = nodes[i % len(nodes)]
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=True)}
