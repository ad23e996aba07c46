"""Shared pieces of the ESM and SDA benchmarks: test data, machine facts, result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


class Topics:
    """Unit-norm vectors shaped like sentence embeddings: a shared direction, a topic centre
    and noise, so that random pairs have cosine ~0.15 and same-topic pairs ~0.5.

    `real` and `synthetic` draw from different topic mixtures: the synthetic side
    over-represents some topics, adds a 15% share of topics the real data does not have
    and is a little less diverse, as LLM generations are.
    """

    def __init__(self, d: int = 384, n_topics: int = 20, n_off: int = 5, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.d = d
        self.base = _unit(rng.normal(size=(1, d)))[0]
        self.centres = _unit(rng.normal(size=(n_topics + n_off, d)))
        self.real_mix = np.concatenate([rng.dirichlet(np.full(n_topics, 2.0)), np.zeros(n_off)])
        self.syn_mix = np.concatenate(
            [0.85 * rng.dirichlet(np.full(n_topics, 0.7)), 0.15 * rng.dirichlet(np.ones(n_off))]
        )

    def sample(
        self, n: int, side: str, rng: np.random.Generator, dtype: type = np.float64
    ) -> np.ndarray:
        mix = self.real_mix if side == "real" else self.syn_mix
        noise = 0.5 if side == "real" else 0.4
        topic = rng.choice(mix.size, size=n, p=mix)
        out = np.empty((n, self.d), dtype=dtype)
        for lo in range(0, n, 1 << 16):
            hi = min(n, lo + (1 << 16))
            z = _unit(rng.normal(size=(hi - lo, self.d)))
            v = np.sqrt(0.15) * self.base + np.sqrt(0.35) * self.centres[topic[lo:hi]]
            out[lo:hi] = _unit(v + np.sqrt(noise) * z)
        return out


def _unit(A: np.ndarray) -> np.ndarray:
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def machine() -> dict[str, Any]:
    """Cores, memory, library versions and BLAS set-up of this run."""
    import psutil
    import scipy
    import sklearn
    import threadpoolctl

    try:
        import skada

        skada_version = skada.__version__
    except ImportError:  # pragma: no cover - skada is a declared dependency
        skada_version = None
    blas = [
        {k: lib.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for lib in threadpoolctl.threadpool_info()
        if lib.get("user_api") == "blas"
    ]
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "skada": skada_version,
        "blas": blas,
        "platform": platform.platform(),
    }


def git_state() -> dict[str, Any]:
    def run(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def command(script: str, argv: list[str]) -> str:
    return shlex.join(["python", f"benchmarks/{script}", *argv])


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Best wall time of `repeats` calls (the least disturbed one) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_child(script: Path, args: list[str]) -> dict[str, Any]:
    """Run `script --child ...` in a fresh interpreter and return the JSON it prints last,
    so a case's peak memory is its own."""
    done = subprocess.run(
        [sys.executable, str(script), "--child", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"child run failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_command(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command to the end; its wall and CPU seconds and the load around it. A failed
    command stops the benchmark with its exit code and the end of its stderr."""
    import resource
    import time

    before = load()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])}...: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    return {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "load_before": before,
        "load_after": load(),
    }


def verdict(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "pass" if ok else "MISS"


def write(name: str, report: dict[str, Any], markdown: list[str]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(markdown) + "\n")
    return path


def header(title: str, report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    dirty = " + uncommitted changes" if report["git"]["dirty"] else ""
    blas = ", ".join(
        f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)" for b in m["blas"]
    )
    return [
        f"# {title}",
        "",
        f"- Date (UTC): {report['date']}",
        f"- Command: `{report['command']}`",
        f"- Commit: {report['git']['commit']}{dirty}",
        f"- Machine: {m['cpus']} CPUs, {m['memory_gib']} GiB; {m['platform']}",
        f"- Python {m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, "
        f"scikit-learn {m['scikit-learn']}, skada {m['skada']}; BLAS: {blas}",
        f"- 1-minute load average before / after: {report['load_before'][0]} / "
        f"{report['load_after'][0]} (other processes share the machine; times are the best "
        "of the stated repeats)",
        "",
    ]


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
