"""Joining a Ray cluster, placing actors on its nodes, and leaving nothing behind.

Ray is imported only here and only when a Ray executor is built, so a missing Ray is a
one-line error rather than an import failure of the whole package.

What SynAlign starts on Ray it also stops: the actors of its worker pools are killed, and
a Ray instance it started itself is shut down, when the run ends (the process exits, the
objects that own the pools are dropped, or an error or Ctrl-C ends an executor call). Ray's
own teardown at exit stops the local raylet without waiting for its workers, which can
leave an actor's process (with its loaded model) running on its own after the command has
returned. A cluster the user started (`ray_address`, $RAY_ADDRESS, or `ray.init` called
before SynAlign) is left running; only SynAlign's actors on it are killed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Protocol

from synalign.errors import ConfigError, SynAlignError

STOP_TIMEOUT = 10.0  # seconds to wait for killed actors' processes to go


class Pool(Protocol):
    """A worker pool as the registry sees it: its actors, and whether it was closed."""

    closed: bool

    @property
    def actors(self) -> list[Any]: ...


class _Owned:
    """What SynAlign started on Ray from this process."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self.started_ray = False  # ray.init here started a local Ray instance
        self.hooked = False


_OWNED = _Owned()

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
    with _OWNED.lock:
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
                    f"cannot connect to the Ray cluster at {where} ({detail}); start one with"
                    ' `ray start --head` and set ray_address = "auto" (or HOST:6379)'
                ) from None
            _OWNED.started_ray = _started_a_local_instance(ray)
        if not _OWNED.hooked:
            # registered after `import ray`, so it runs before Ray's own shutdown at exit
            atexit.register(release_all)
            _OWNED.hooked = True
    return ray


def _started_a_local_instance(ray: Any) -> bool:
    """Whether the `ray.init` just made started a head node here (rather than joining a
    running cluster, or a Ray Client connection)."""
    node = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(node, "_global_node", None)
    try:
        return bool(node is not None and node.is_head())
    except Exception:  # an internal that moved: then leave Ray's teardown to Ray
        return False


def own(pool: Pool, owner: object) -> None:
    """Track `pool`, whose actors SynAlign created; they are killed when `owner` is
    dropped, or at exit."""
    with _OWNED.lock:
        _OWNED.pools.add(pool)
    finalizer = weakref.finalize(owner, release, pool)
    finalizer.atexit = False  # at exit, `release_all` (run before Ray's teardown) does it


def release(pool: Pool) -> None:
    """Kill the actors of `pool`; shut Ray down if SynAlign started it and no pool of
    its own is left open."""
    with _OWNED.lock:
        _close([pool])
        if not any(not p.closed for p in _OWNED.pools):
            _shutdown()


def release_all() -> None:
    """Kill every actor SynAlign created, and shut down the Ray instance it started."""
    with _OWNED.lock:
        _close(list(_OWNED.pools))
        _shutdown()


class released_on_error:  # noqa: N801 (used as a statement: `with released_on_error():`)
    """Release everything SynAlign started on Ray when an error or Ctrl-C ends an executor
    call: the run is over. A caller that goes on gets new workers on its next call."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None and not isinstance(error, GeneratorExit):
            release_all()


def _close(pools: list[Pool]) -> None:
    actors = []
    for pool in pools:
        if not pool.closed:
            pool.closed = True
            actors += [a for a in pool.actors if a is not None]
    if actors:
        stop_actors(import_ray(), actors)


def _shutdown() -> None:
    if not _OWNED.started_ray:
        return
    _OWNED.started_ray = False
    ray = import_ray()
    with contextlib.suppress(Exception):  # already down
        if ray.is_initialized():
            ray.shutdown()


def stop_actors(ray: Any, actors: list[Any], timeout: float = STOP_TIMEOUT) -> None:
    """Kill `actors` and wait (at most `timeout` s) until Ray counts them dead and their
    processes on this machine are gone, so that a shutdown right after finds no worker
    still loading a model."""
    if not ray.is_initialized():
        return
    state = getattr(getattr(ray, "_private", None), "state", None)
    here = _node_id(ray)
    pids: list[int] = []
    pending: list[str] = []
    for actor in actors:
        actor_id = _actor_id(actor)
        info = _actor_info(state, actor_id)
        with contextlib.suppress(Exception):  # already gone
            ray.kill(actor, no_restart=True)
        if actor_id:
            pending.append(actor_id)
        node = (info.get("Address") or {}).get("NodeID")
        if info.get("Pid") and here and node == here:
            pids.append(int(info["Pid"]))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [a for a in pending if _actor_info(state, a).get("State") not in ("DEAD", None)]
        pids = [pid for pid in pids if _running(pid)]
        if not pending and not pids:
            return
        time.sleep(0.05)


def _actor_id(actor: Any) -> str | None:
    with contextlib.suppress(Exception):
        return str(actor._actor_id.hex())
    return None


def _actor_info(state: Any, actor_id: str | None) -> dict[str, Any]:
    """The GCS's record of an actor ({} if it cannot be read)."""
    if state is None or actor_id is None:
        return {}
    try:
        info = state.actors(actor_id=actor_id)
    except Exception:
        return {}
    return info if isinstance(info, dict) else {}


def _node_id(ray: Any) -> str | None:
    with contextlib.suppress(Exception):
        return str(ray.get_runtime_context().get_node_id())
    return None


def _running(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie waiting to be reaped does not)."""
    try:
        import psutil
    except ImportError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


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
