"""A real OpenAI-compatible server (llama.cpp's) on a free loopback port, for tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REQUEST_LINE = re.compile(r'"POST /v1/(chat/)?completions HTTP/1\.1" (\d{3})')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """`python -m llama_cpp.server` as a child process; counts requests from its access log."""

    def __init__(
        self,
        model_path: str,
        log_dir: Path,
        alias: str = "gemma",
        api_key: str | None = None,
        port: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.threads = threads or os.cpu_count() or 2
        self.model_path = model_path
        self.alias = alias
        self.api_key = api_key
        self.port = port or free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 180.0) -> LlamaServer:
        log = self.log_dir / f"server-{self.port}-{len(self.logs)}.log"
        self.logs.append(log)
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", self.model_path, "--model_alias", self.alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", "2048", "--n_threads", str(self.threads), "--verbose", "False",
        ]  # fmt: skip
        if self.api_key:
            cmd += ["--api_key", self.api_key]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early: {log.read_text()[-2000:]}")
            try:
                req = urllib.request.Request(f"{self.base_url}/models")
                if self.api_key:
                    req.add_header("Authorization", f"Bearer {self.api_key}")
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not answer in time")

    def kill(self) -> None:
        """SIGKILL: the server dies mid-request, as a crashed host would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def requests(self, status: str | None = None, log_index: int | None = None) -> int:
        """Completion requests answered so far (in one log, or all of them)."""
        logs = self.logs if log_index is None else [self.logs[log_index]]
        n = 0
        for log in logs:
            if log.exists():
                for m in REQUEST_LINE.finditer(log.read_text(errors="replace")):
                    n += status is None or m.group(2) == status
        return n

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
