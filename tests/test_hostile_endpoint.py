"""An endpoint that answers 200 with something that is not a completion (a proxy's HTML
login page, broken JSON, no choices, a null message): a few retries, then one line that
names the endpoint, through the console script and through the Python API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from synalign import SynAlign
from synalign.backends.llm.base import Prompt, Request, SamplingParams
from synalign.backends.llm.openai_compat import LLMRequestError, OpenAICompatibleLLM
from synalign.errors import SynAlignError

KEY = "sk-hostile-5d2e8a41c7"
LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Sign in &middot; Corp Proxy</title></head>\n"
    "<body><form action='/login'><input name='user'></form></body></html>\n"
)
GOOD = {
    "choices": [{"index": 0, "text": "a fine film", "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3},
}

# mode -> (content type, body, what the message says it was)
MODES: dict[str, tuple[str, str, str]] = {
    "invalid-json": (
        "application/json",
        '{"choices": [{"text": "a',
        """invalid JSON starting '{"choices": [{"text": "a'""",
    ),
    "html": ("text/html; charset=utf-8", LOGIN_PAGE, "an HTML page titled 'Sign in · Corp Proxy'"),
    "empty-body": ("application/json", "", "an empty body"),
    "empty-choices": ("application/json", '{"choices": []}', "no choices"),
    "no-choices": ("application/json", '{"id": "x", "object": "chat.completion"}', "no choices"),
    "null-content": (
        "application/json",
        '{"choices": [{"message": {"content": null}}]}',
        "a choice with no message.content",
    ),
    "no-message": ("application/json", '{"choices": [{"index": 0}]}', "a choice without a message"),
    "no-text": (
        "application/json",
        '{"choices": [{"index": 0, "finish_reason": "stop"}]}',
        "a choice with no text",
    ),
    "error-object": (
        "application/json",
        json.dumps({"error": {"message": f"token {KEY} expired"}}),
        "an error object: token *** expired",
    ),
}
# the prompt family each mode is tried with (a chat message, or a completion's text)
CHAT_ONLY = {"null-content", "no-message"}
COMPLETION_ONLY = {"no-text"}


def _family(mode: str) -> str:
    return "completion" if mode in COMPLETION_ONLY else "chat"


class HostileServer:
    """A loopback HTTP server answering every POST with 200 and the body of `mode`; it
    counts the requests and the keys they carried. `flaky` bad answers come before good
    ones."""

    def __init__(self) -> None:
        self.mode = "html"
        self.flaky = 0
        self.posts: list[str] = []
        self.keys: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with server._lock:
                    server.posts.append(self.path)
                    server.keys.add(self.headers.get("authorization", ""))
                    bad = server.flaky > 0 or server.mode != "good"
                    server.flaky = max(0, server.flaky - 1)
                if bad:
                    content_type, body, _ = MODES[server.mode if server.mode != "good" else "html"]
                else:
                    content_type, body = "application/json", json.dumps(GOOD)
                data = body.encode()
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test reads the counters, not a log."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def reset(self, mode: str, flaky: int = 0) -> None:
        with self._lock:
            self.mode, self.flaky = mode, flaky
            self.posts.clear()
            self.keys.clear()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def _expected(base_url: str, mode: str, attempts: int = 3) -> str:
    return (
        f"LLM endpoint {base_url} answered with something that is not an OpenAI-compatible"
        f" completion ({MODES[mode][2]}) after {attempts} attempts; check that llm.base_url"
    )


@pytest.mark.parametrize("mode", sorted(MODES))
def test_console_script_stops_in_one_line(
    mode: str, hostile: HostileServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """As a user runs it; one run folder for every mode, so that ingest and exploration
    run once and each case costs only the failing describe stage."""
    runs = tmp_path_factory.getbasetemp() / "hostile-cli"
    hostile.reset(mode)
    script = Path(sys.executable).parent / "synalign"
    args = [
        str(script), "generate", "--dataset", "rotten-tomatoes", "--shots", "4",
        "--samples-per-label", "4", "--llm", "openai", "--base-url", hostile.base_url,
        "--model", "x", "--runs-dir", str(runs), "--name", "r",
        "--set", f'llm.prompt_family="{_family(mode)}"',
        # one request in flight, so that the count is the attempts of one request
        "--set", "llm.concurrency=1",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": KEY},
        timeout=300,
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    # above the error, only the progress lines of the stages that ran
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert errors[0].startswith("error: " + _expected(hostile.base_url, mode)), errors[0]
    assert "llm.base_url (--base-url)" in errors[0] and errors[0].endswith("/v1)")
    assert KEY not in proc.stderr + proc.stdout and hostile.keys == {f"Bearer {KEY}"}
    suffix = "chat/completions" if _family(mode) == "chat" else "completions"
    assert hostile.posts == [f"/v1/{suffix}"] * 3, hostile.posts
    print(f"\n{mode}: {len(hostile.posts)} attempts, {seconds:.1f} s: {errors[0]}")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_python_api_raises_the_same_error(
    mode: str, hostile: HostileServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rows = [
        {"text": f"{word} film number {i}, {adjective} from start to end.", "label": label}
        for i in range(4)
        for word, adjective, label in (
            ("A lovely", "warm", "fresh"),
            ("A dreary", "dull", "rotten"),
        )
    ]
    hostile.reset(mode)
    estimator = SynAlign(
        llm=hostile.base_url,
        model="x",
        samples_per_label=4,
        run_dir=tmp_path_factory.getbasetemp() / "hostile-api",
        settings={
            "llm": {"api_key": KEY, "concurrency": 1, "prompt_family": _family(mode)},
        },
    )
    with pytest.raises(SynAlignError) as info:
        estimator.generate(rows)
    assert isinstance(info.value, LLMRequestError)
    message = str(info.value)
    assert message.startswith(_expected(hostile.base_url, mode)), message
    assert "\n" not in message and KEY not in message
    assert len(hostile.posts) == 3


def test_a_passing_bad_answer_is_retried_like_a_transient_error(hostile: HostileServer) -> None:
    """Once the endpoint has answered properly, a garbled answer gets the whole
    llm.max_retries budget; before, two retries (a wrong URL does not get better)."""
    llm = OpenAICompatibleLLM("x", base_url=hostile.base_url, api_key=KEY, concurrency=1)
    llm.backoff = 0.01
    prompt, params = Prompt(text="A film"), SamplingParams(min_p=None)
    hostile.reset("good", flaky=2)
    out = list(llm.stream([Request(prompt, params, 0)]))
    assert [c.text for _, c in out] == ["a fine film"] and llm.retries == 2
    assert out[0][1].completion_tokens == 3
    hostile.reset("invalid-json", flaky=0)
    llm.max_retries = 4
    with pytest.raises(LLMRequestError, match=r"\(invalid JSON starting .*\) after 5 attempts"):
        list(llm.stream([Request(prompt, params, 1)]))
    assert len(hostile.posts) == 5
    fresh = OpenAICompatibleLLM("x", base_url=hostile.base_url, api_key=KEY, concurrency=4)
    fresh.backoff = 0.01
    hostile.reset("html")
    with pytest.raises(LLMRequestError, match="an HTML page titled 'Sign in · Corp Proxy'"):
        list(fresh.stream([Request(prompt, params, i) for i in range(4)]))
    assert len(hostile.posts) <= 4 * 3  # at most three attempts of each request in flight
