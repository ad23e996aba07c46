"""The OpenAI-compatible backend against a real llama.cpp server on loopback."""

from __future__ import annotations

import json
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
from synalign.backends.llm.llamacpp import bundled_model_path
from synalign.backends.llm.openai_compat import OpenAICompatibleLLM, _retry_after
from synalign.config import build_config
from synalign.errors import SynAlignError
from synalign.io import read_jsonl
from synalign.pipeline.runner import Pipeline

KEY = "sk-test-7f3a9c2e55d1"


@pytest.fixture(scope="module")
def gemma_path() -> str:
    return str(bundled_model_path())


@pytest.fixture(scope="module")
def server(gemma_path: str, tmp_path_factory: pytest.TempPathFactory):
    srv = LlamaServer(gemma_path, tmp_path_factory.mktemp("srv"), api_key=KEY)
    try:
        yield srv.start()
    finally:
        srv.stop()


def _config(runs_dir: Path, name: str, base_url: str, **llm: object):
    return build_config(
        {
            "name": name,
            "runs_dir": str(runs_dir),
            "seed": 2,
            "data": {"dataset": "rotten-tomatoes", "shots": 4},
            "explore": {"cluster_size": 2},
            "generate": {"samples_per_label": 4, "samples_per_cluster": 2},
            "llm": {
                "backend": "openai",
                "model": "gemma",
                "base_url": base_url,
                "prompt_family": "completion",
                "concurrency": 2,
                **llm,
            },
        }
    )


def _default_sigint() -> None:
    """A child's Ctrl-C as a user's shell gives it: SIGINT neither ignored nor blocked (a
    library in the test process may leave either behind, and children inherit both)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cached(run_dir: Path) -> int:
    db = run_dir / "cache" / "llm.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_generation_through_server_and_repeat_makes_no_request(
    server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    config = _config(tmp_path, "http", server.base_url)
    before = server.requests()
    Pipeline(config).run(until="generate")
    made = server.requests() - before
    # 2 labels x 2 clusters: 4 attribute calls + 8 sample calls
    assert made == 12
    print(f"\nfirst run: {made} requests")
    state = json.loads((config.run_dir / "state.json").read_text())["stages"]
    assert state["describe"]["llm"]["calls"] == 4 and state["generate"]["llm"]["calls"] == 8
    synthetic = read_jsonl(config.run_dir / "synthetic.jsonl")
    assert synthetic and all(s["backend"] == "openai" and s["model"] == "gemma" for s in synthetic)
    first = (config.run_dir / "synthetic.jsonl").read_text()
    # forcing every stage again is served from the response cache: zero requests
    Pipeline(config).run(until="generate", force=True)
    assert server.requests() - before == 12
    print("forced repeat: 0 requests")
    assert (config.run_dir / "synthetic.jsonl").read_text() == first
    # the key is in no file of the run directory, the cache included
    for path in config.run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_wrong_key_stops_at_once_without_leaking_it(server: LlamaServer, tmp_path: Path) -> None:
    wrong = "sk-wrong-0123456789"
    config = _config(tmp_path, "badkey", server.base_url, api_key=wrong)
    before = server.requests(status="401")
    with pytest.raises(SynAlignError) as info:
        Pipeline(config).run(until="generate")
    message = str(info.value)
    assert "401" in message and "API key" in message and wrong not in message
    assert server.requests(status="401") - before <= 2  # at most the requests in flight
    assert wrong not in (config.run_dir / "config.toml").read_text()


def test_unreachable_endpoint_names_the_url(tmp_path: Path) -> None:
    from servers import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    config = _config(tmp_path, "down", url, max_retries=1, timeout=2)
    with pytest.raises(SynAlignError, match=f"{url}.*still failing after 1 retries"):
        Pipeline(config).run(until="generate")


def test_sigkill_mid_generation_then_resume(server: LlamaServer, tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "synalign", "generate", "--dataset", "rotten-tomatoes",
        "--shots", "6", "--samples-per-label", "6", "--runs-dir", str(tmp_path),
        "--name", "killed", "--llm", "openai", "--model", "gemma",
        "--base-url", server.base_url, "--set", 'llm.prompt_family="completion"',
        "--set", "llm.concurrency=2", "--set", "generate.samples_per_cluster=3",
    ]  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    run_dir = tmp_path / "killed"
    before = server.requests()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _cached(run_dir) < 7 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # let the server finish (and log) what was in flight
    cached_at_kill = _cached(run_dir)
    first_run = server.requests() - before
    assert not (run_dir / "synthetic.jsonl").exists()

    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    total = _cached(run_dir)
    second_run = server.requests() - before - first_run
    # 2 labels x 2 clusters: 4 attribute calls + 12 sample calls
    assert total == 16
    assert second_run == total - cached_at_kill  # only the missing ones
    assert first_run + second_run <= total + 2  # repeats: at most those in flight
    print(
        f"\nSIGKILL resume: {total} calls needed; killed with {cached_at_kill} cached after "
        f"{first_run} requests; restart made {second_run} requests "
        f"(repeated: {first_run + second_run - total})"
    )
    assert len(read_jsonl(run_dir / "synthetic.jsonl")) > 0


def test_server_killed_and_restarted_is_survived(gemma_path: str, tmp_path: Path) -> None:
    srv = LlamaServer(gemma_path, tmp_path)
    try:
        srv.start()
        config = _config(tmp_path, "flaky", srv.base_url, max_retries=30, timeout=60, concurrency=2)
        config.generate.samples_per_label = 6
        config.generate.samples_per_cluster = 3
        errors: list[BaseException] = []
        pipe = Pipeline(config)

        def run() -> None:
            try:
                pipe.run(until="generate")
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 300
        while _cached(config.run_dir) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        srv.kill()
        time.sleep(2.0)
        cached_at_kill = _cached(config.run_dir)
        srv.start()
        worker.join(timeout=600)
        assert not worker.is_alive() and not errors, errors
        total = _cached(config.run_dir)
        assert total == 16  # 4 attribute calls + 12 sample calls
        assert srv.requests(log_index=1) == total - cached_at_kill
        state = json.loads((config.run_dir / "state.json").read_text())["stages"]
        retried = state["describe"]["llm"]["retries"] + state["generate"]["llm"]["retries"]
        assert retried >= 1
        print(
            f"\nserver restart: {total} calls needed; {cached_at_kill} cached when the server "
            f"was killed; restarted server served {srv.requests(log_index=1)}; "
            f"{retried} retries"
        )
    finally:
        srv.stop()


def test_chat_family_through_server(smollm_path: str, tmp_path: Path) -> None:
    with LlamaServer(smollm_path, tmp_path, alias="smollm") as srv:
        config = _config(tmp_path, "chat", srv.base_url, prompt_family="auto", model="smollm")
        config.generate.min_words = 1
        config.generate.near_copy = 1.0
        config.llm.max_tokens = 120
        try:
            Pipeline(config).run(until="generate")
        except SynAlignError as exc:  # a 135M model may fail a label; the path still ran
            assert "no synthetic sample was accepted" in str(exc)
        # 4 attribute calls + 4 sample calls (a chat call returns all samples of a cluster)
        assert srv.requests() == 8
        text = srv.logs[0].read_text()
        assert '"POST /v1/chat/completions HTTP/1.1" 200' in text
        attrs = read_jsonl(config.run_dir / "attributes.jsonl")
        assert all(a["raw"] for a in attrs)
        rows = read_jsonl(config.run_dir / "rejected.jsonl")
        if (config.run_dir / "synthetic.jsonl").exists():
            rows += read_jsonl(config.run_dir / "synthetic.jsonl")
        assert rows and all(r["prompt_family"] == "chat" for r in rows)


def test_base_model_given_chat_prompts_is_told_to_use_completion(
    server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled base model served over HTTP gets chat prompts by default; it echoes
    them or runs to the token limit, and the error names the prompt family first."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    config = _config(tmp_path, "base-chat", server.base_url, prompt_family="auto", max_tokens=32)
    with pytest.raises(SynAlignError) as info:
        Pipeline(config).run(until="generate")
    message = str(info.value)
    rows = read_jsonl(config.run_dir / "rejected.jsonl")
    assert rows and all(r["prompt_family"] == "chat" for r in rows)
    assert message.startswith("no synthetic sample was accepted"), message
    fixes = message.split("); ", 1)[-1]
    assert 'set llm.prompt_family = "completion"' in fixes, message
    assert fixes.index("llm.prompt_family") < fixes.index("generate.samples_per_label")


def test_retry_after_header_is_read() -> None:
    class Response:
        def __init__(self, headers: dict[str, str]) -> None:
            self.status_code = 429
            self.headers = headers

    class RateLimitedError(Exception):
        def __init__(self, headers: dict[str, str]) -> None:
            self.response = Response(headers)

    assert _retry_after(RateLimitedError({"retry-after": "3"})) == 3.0
    assert _retry_after(RateLimitedError({"retry-after-ms": "250"})) == 0.25
    assert _retry_after(RateLimitedError({})) is None


def test_backend_reports_its_identity() -> None:
    llm = OpenAICompatibleLLM("m", base_url="http://127.0.0.1:9/v1", api_key="k")
    assert (llm.backend, llm.model, llm.has_chat_template) == ("openai", "m", True)


def test_ctrl_c_stops_cleanly_and_keeps_what_was_received(
    server: LlamaServer, tmp_path: Path
) -> None:
    args = [
        sys.executable, "-m", "synalign", "generate", "--dataset", "rotten-tomatoes",
        "--shots", "6", "--samples-per-label", "6", "--runs-dir", str(tmp_path),
        "--name", "interrupted", "--llm", "openai", "--model", "gemma",
        "--base-url", server.base_url, "--set", 'llm.prompt_family="completion"',
        "--set", "generate.samples_per_cluster=3", "--seed", "5",
        # one request at a time, so that the signal lands while answers are still due
        "--set", "llm.concurrency=1",
    ]  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    run_dir = tmp_path / "interrupted"
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,  # as from a shell, whatever earlier tests left behind
    )
    deadline = time.monotonic() + 300
    while _cached(run_dir) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    at_signal = (_cached(run_dir), proc.poll())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (at_signal, _cached(run_dir), err.decode()[-3000:])
    assert "Traceback" not in err.decode() and "interrupted" in err.decode()
    kept = _cached(run_dir)
    assert kept >= 6
    before = server.requests()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert server.requests() - before == 16 - kept
