"""What a Ray run starts, it stops: after `synalign generate --executor ray` exits (done,
or stopped by Ctrl-C) no Ray worker of it is left running; and when the user started Ray
before SynAlign, SynAlign kills its own actors but leaves Ray up."""

from __future__ import annotations

import gc
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from synalign.config import build_config

psutil = pytest.importorskip("psutil")
pytest.importorskip("ray")

ACTOR_PROCESSES = ("ray::EmbedWorker", "ray::OpenAIWorker", "ray::LLMWorker")
ADJECTIVES = ("warm", "sharp", "tender", "bold", "quiet", "witty", "grim", "lush", "brisk")
NOUNS = ("script", "cast", "score", "ending", "story", "camera", "pace", "lead", "plot")


class ReviewServer:
    """A loopback OpenAI-compatible endpoint that writes a different short review for
    every request, fast and without a model; `delay` seconds before each answer."""

    def __init__(self) -> None:
        counter = itertools.count()
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                time.sleep(server.delay)
                n = next(counter)
                a, b, c = (ADJECTIVES[(n * k) % len(ADJECTIVES)] for k in (1, 2, 5))
                x, y = (NOUNS[(n * k + 3) % len(NOUNS)] for k in (1, 4))
                text = f" A {a} film with a {b} {x}, a {c} {y} and much to enjoy."
                body = json.dumps(
                    {
                        "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 50, "completion_tokens": 14},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture(scope="module")
def reviews() -> Iterator[ReviewServer]:
    server = ReviewServer()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def _ray_processes(root: int) -> dict[int, tuple[float, str]]:
    """Ray's processes under `root`: pid -> (start time, command line)."""
    found: dict[int, tuple[float, str]] = {}
    try:
        children = psutil.Process(root).children(recursive=True)
    except psutil.Error:
        return found
    for child in children:
        try:
            line = " ".join(child.cmdline())
            if "ray" in line:
                found[child.pid] = (child.create_time(), line)
        except psutil.Error:
            continue
    return found


def _still_running(seen: dict[int, tuple[float, str]]) -> list[str]:
    alive = []
    for pid, (started, line) in seen.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {line[:80]}")
        except psutil.Error:
            continue
    return alive


def _run_and_watch(
    args: list[str], interrupt_when: str | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[int, tuple[float, str]], float]:
    """Runs the console script, noting every Ray process it starts; with
    `interrupt_when`, sends it Ctrl-C once a process with that name runs."""
    script = Path(sys.executable).parent / "synalign"
    proc = subprocess.Popen([str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: dict[int, tuple[float, str]] = {}
    interrupted = False
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        seen.update(_ray_processes(proc.pid))
        lines = [line for _, line in seen.values()]
        if interrupt_when and not interrupted and any(interrupt_when in ln for ln in lines):
            time.sleep(1.0)  # let the worker get busy
            proc.send_signal(signal.SIGINT)
            interrupted = True
        time.sleep(0.1)
    out, err = proc.communicate(timeout=60)
    exited = time.monotonic()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())
    return done, seen, exited


def _assert_nothing_left(seen: dict[int, tuple[float, str]], exited: float) -> float:
    """The run's actors are gone when the command returns (Ray's own teardown leaves a
    worker running for a while after its raylet), and every other Ray process of the run
    within 5 s; returns how long the last one took."""
    assert any("ray::EmbedWorker" in line for _, line in seen.values()), seen
    actors = {pid: v for pid, v in seen.items() if v[1].startswith(ACTOR_PROCESSES)}
    while _still_running(actors) and time.monotonic() - exited < 0.5:
        time.sleep(0.05)
    left = _still_running(actors)
    assert not left, f"{time.monotonic() - exited:.1f} s after the exit: {left}"
    while _still_running(seen) and time.monotonic() - exited < 5:
        time.sleep(0.1)
    left = _still_running(seen)
    assert not left, left
    return time.monotonic() - exited


def _args(tmp_path: Path, base_url: str, name: str) -> list[str]:
    return [
        "generate", "--dataset", "rotten-tomatoes", "--shots", "4",
        "--samples-per-label", "4", "--llm", "openai", "--base-url", base_url,
        "--model", "x", "--runs-dir", str(tmp_path), "--name", name,
        "--set", 'llm.prompt_family="completion"', "--executor", "ray",
    ]  # fmt: skip


@pytest.mark.slow
def test_finished_run_leaves_no_ray_process(reviews: ReviewServer, tmp_path: Path) -> None:
    start = time.monotonic()
    proc, seen, exited = _run_and_watch(_args(tmp_path, reviews.base_url, "done"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "done" / "synthetic.jsonl").is_file()
    gone = _assert_nothing_left(seen, exited)
    print(f"\nrun {exited - start:.1f} s, {len(seen)} Ray processes, all gone {gone:.1f} s after")


@pytest.mark.slow
def test_interrupted_run_leaves_no_ray_process(reviews: ReviewServer, tmp_path: Path) -> None:
    start = time.monotonic()
    args = _args(tmp_path, reviews.base_url, "stopped")
    reviews.delay = 3.0  # the LLM calls after the first embeddings outlast the interrupt
    try:
        proc, seen, exited = _run_and_watch(args, interrupt_when="ray::EmbedWorker")
    finally:
        reviews.delay = 0.0
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "interrupted" in proc.stderr
    gone = _assert_nothing_left(seen, exited)
    print(f"\nrun {exited - start:.1f} s, {len(seen)} Ray processes, all gone {gone:.1f} s after")


@pytest.mark.slow
def test_a_ray_the_user_started_stays_up(tmp_path: Path) -> None:
    """Ray started before SynAlign (as with `ray_address`): the embedder's worker is
    killed once the embedder is dropped, the Ray instance is not shut down."""
    import ray

    from synalign.backends.ray.executor import RayEmbedder

    if ray.is_initialized():
        pytest.skip("another test left Ray running in this process")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        config = build_config({"executor": "ray", "runs_dir": str(tmp_path), "name": "api"})
        embedder = RayEmbedder(config)
        assert embedder.encode(["a warm film", "a dull one"]).shape == (2, 384)
        (actor,) = embedder.pool().actors
        worker = psutil.Process(ray.get(actor.info.remote())[0])
        del embedder, actor
        gc.collect()
        worker.wait(timeout=10)  # gone once the embedder is
        assert ray.is_initialized()
        assert ray.cluster_resources().get("CPU") == 2  # and its node is still up
    finally:
        ray.shutdown()
