"""The Ray executor on a local 2-CPU Ray instance: the same outputs as the local executor,
and a worker killed mid-run is survived without asking twice for an answer received."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from servers import LlamaServer
from synalign.backends.llm.base import Prompt, Request, SamplingParams
from synalign.backends.llm.factory import check_llm_config
from synalign.config import build_config
from synalign.errors import ConfigError
from synalign.pipeline.runner import Pipeline

OUTPUTS = (
    "real.jsonl",
    "demos.jsonl",
    "attributes.jsonl",
    "synthetic.jsonl",
    "rejected.jsonl",
    "aligned.jsonl",
    "weights.npy",
    "align.json",
)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        yield ray
    finally:
        ray.shutdown()


def _config(runs_dir: Path, name: str, executor: str, **llm: object):
    return build_config(
        {
            "name": name,
            "runs_dir": str(runs_dir),
            "seed": 3,
            "executor": executor,
            "data": {"dataset": "rotten-tomatoes", "shots": 6},
            "explore": {"cluster_size": 2},
            "generate": {"samples_per_label": 6, "samples_per_cluster": 3},
            "llm": {"prompt_family": "completion", **llm},
        }
    )


def _cached(run_dir: Path, table: str = "responses") -> int:
    db = run_dir / "cache" / ("llm.sqlite" if table == "responses" else "embeddings.sqlite")
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _rows(run_dir: Path, table: str) -> dict[str, tuple]:
    db = run_dir / "cache" / ("llm.sqlite" if table == "responses" else "embeddings.sqlite")
    with sqlite3.connect(db) as con:
        return {r[0]: tuple(r[1:]) for r in con.execute(f"SELECT * FROM {table}")}


def _same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


# ----- no cluster needed ---------------------------------------------------------------------


def test_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from synalign.backends.ray.executor import RayLLM

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'synalign\[ray\]'") as info:
        RayLLM(_config(tmp_path, "x", "ray"))
    assert "\n" not in str(info.value)


def test_cli_without_ray_fails_in_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    args = ["generate", "--dataset", "rotten-tomatoes", "--runs-dir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "synalign", *args, "--executor", "ray", "--ray-address", "auto"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'synalign[ray]'" in lines[0], proc.stderr
    assert not (tmp_path / "generate").exists()  # stopped before any stage


def test_endpoint_list_needs_ray(tmp_path: Path) -> None:
    urls = ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    config = _config(tmp_path, "x", "local", backend="openai", model="m", base_url=urls)
    with pytest.raises(ConfigError, match="executor"):
        Pipeline(config).llm  # noqa: B018
    bad = _config(tmp_path, "y", "ray", backend="openai", model="m", base_url=[urls[0], "ftp://x"])
    with pytest.raises(ConfigError, match="'ftp://x': not an http"):
        check_llm_config(bad.llm)


def test_llamacpp_units_are_the_local_batches(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from synalign.backends.ray.executor import RayLLM

    config = _config(tmp_path, "x", "ray")
    config.llm.parallel_samples = 4
    a, b = Prompt(text="a"), Prompt(text="b")
    p = SamplingParams()
    requests = [Request(a, p, i) for i in range(6)] + [Request(b, p, 0), Request(a, p, 9)]
    assert RayLLM(config)._units(requests) == [[0, 1, 2, 3], [4, 5], [6], [7]]


# ----- on a local Ray instance ---------------------------------------------------------------


@pytest.mark.slow
def test_ray_executor_gives_the_local_outputs(ray_local, tmp_path: Path) -> None:
    local = _config(tmp_path, "local", "local")
    start = time.perf_counter()
    Pipeline(local).run()
    t_local = time.perf_counter() - start
    remote = _config(tmp_path, "ray", "ray")
    start = time.perf_counter()
    pipe = Pipeline(remote)
    pipe.run()
    t_ray = time.perf_counter() - start
    _same_outputs(local.run_dir, remote.run_dir)
    # the caches hold the same answers and the same vectors, byte for byte
    assert _rows(local.run_dir, "responses") == _rows(remote.run_dir, "responses")
    assert _rows(local.run_dir, "vectors") == _rows(remote.run_dir, "vectors")
    # the work really ran on the workers, none of them in this process
    llm, embedder = pipe.llm.llm, pipe.embedder.embedder
    assert type(llm).__name__ == "RayLLM" and type(embedder).__name__ == "RayEmbedder"
    assert llm._pool is not None and embedder._pool is not None
    pids = {ray_local.get(a.info.remote())[0] for a in llm._pool.actors + embedder._pool.actors}
    assert os.getpid() not in pids
    print(f"\nlocal {t_local:.1f} s, ray {t_ray:.1f} s (workers started and models loaded)")


@pytest.mark.slow
def test_worker_killed_mid_run_is_survived(ray_local, tmp_path: Path) -> None:
    from synalign.backends.llm.llamacpp import bundled_model_path

    model = str(bundled_model_path())
    # one thread each: two servers share the two cores without spinning against each other
    with (
        LlamaServer(model, tmp_path, threads=1) as a,
        LlamaServer(model, tmp_path, threads=1) as b,
    ):
        llm = {
            "backend": "openai",
            "model": "gemma",
            "base_url": [a.base_url, b.base_url],
            "concurrency": 2,
            "max_tokens": 24,
        }
        config = _config(tmp_path, "killed", "ray", **llm)
        pipe = Pipeline(config)
        pool = pipe.llm.llm.pool()
        assert len(pool.slots) == 2  # one worker per endpoint
        victim = ray_local.get(pool.actors[0].info.remote())[0]
        errors: list[BaseException] = []

        def run() -> None:
            try:
                pipe.run()
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 120
        while _cached(config.run_dir) < 6 and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.05)
        assert worker.is_alive(), "the run finished before a worker could be killed"
        cached_at_kill = _cached(config.run_dir)
        os.kill(victim, signal.SIGKILL)
        worker.join(timeout=300)
        assert not worker.is_alive() and not errors, errors
        time.sleep(0.5)  # let the servers log what was in flight
        total = _cached(config.run_dir)
        made = a.requests() + b.requests()
        assert total == 16  # 4 attribute calls + 12 sample calls
        # every answer received was asked once; a repeat can only be a request that was in
        # flight on the killed worker (at most llm.concurrency of them)
        assert total <= made <= total + 2
        assert a.requests() > 0 and b.requests() > 0  # both endpoints served
        assert pool.deaths == 1 and pool.slots[0].epoch == 1
        state = pipe.run_dir.stages()
        assert state["describe"]["llm"]["calls"] + state["generate"]["llm"]["calls"] == 16
        print(
            f"\nkilled a worker with {cached_at_kill}/16 answers cached; the servers got "
            f"{made} requests ({a.requests()} + {b.requests()}), repeated {made - total}"
        )
        # the local executor, given the same cached answers, writes the same outputs and
        # asks for nothing
        again = _config(tmp_path, "again", "local", **{**llm, "base_url": a.base_url})
        (again.run_dir / "cache").mkdir(parents=True)
        with (
            sqlite3.connect(config.run_dir / "cache" / "llm.sqlite") as source,
            sqlite3.connect(again.run_dir / "cache" / "llm.sqlite") as copy,
        ):
            source.backup(copy)
        Pipeline(again).run()
        assert a.requests() + b.requests() == made
        _same_outputs(config.run_dir, again.run_dir)
