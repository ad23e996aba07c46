"""Every pipeline run's report.html: the demo's, as a person's browser shows it, rebuilt
by `synalign report`, and light at 100,000 samples."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from browser import render
from synalign.report.run_report import RunReport

SYNALIGN = str(Path(sys.executable).parent / "synalign")
SECTIONS = (
    "Counts per label",
    "What the attribute step said",
    "Real vs synthetic, before and after weighting",
    "Accepted samples",
    "Rejected samples",
    "Stages and config",
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`synalign demo` at a tiny budget with the real bundled model, as a user types it."""
    runs = tmp_path_factory.mktemp("runs")
    cmd = [SYNALIGN, "demo", "--samples-per-label", "6", "--shots", "4", "--runs-dir", str(runs)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return runs / "demo", done.stdout


def test_demo_ends_with_the_report_path(demo_run: tuple[Path, str]) -> None:
    run, stdout = demo_run
    last = stdout.strip().splitlines()[-1]
    assert last == f"report: {run / 'report' / 'report.html'}"
    assert (run / "report" / "report.html").is_file()


def test_demo_report_in_a_real_browser(demo_run: tuple[Path, str], tmp_path: Path) -> None:
    """Loads offline with no script error, shows every section and three drawn plots, and
    lists every accepted sample with the weight align.json's weights give it."""
    run, _ = demo_run
    page = run / "report" / "report.html"
    shown = render(page, tmp_path)
    assert shown.errors == ""
    assert "http://" not in page.read_text() and "https://" not in page.read_text()
    body = shown.dom[shown.dom.index("<body") :]
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in body, section
    assert len(shown.images) == 3 and all(w > 300 and h > 200 for w, h in shown.images)
    assert shown.screenshot.std() > 10
    synthetic = [json.loads(line) for line in (run / "synthetic.jsonl").open()]
    weights = np.load(run / "weights.npy")
    assert len(weights) == len(synthetic)
    for row in synthetic:
        assert row["text"].replace("&", "&amp;").replace("<", "&lt;")[:40] in body
    labels = [r["label"] for r in synthetic]
    shares = {lab: weights[np.asarray(labels) == lab].sum() for lab in set(labels)}
    shown_weights = sorted(float(x) for x in re.findall(r"<tr><td>(\d+\.\d\d)</td><td", body))
    expected = sorted(
        round(float(w) * labels.count(lab) / shares[lab], 2)
        for w, lab in zip(weights, labels, strict=True)
    )
    assert np.allclose(shown_weights, expected, atol=0.011)
    first = re.search(r"<p>(.*?)</p>", body, re.S)
    assert first and f"<strong>{len(synthetic)} synthetic samples accepted</strong>" in first[1]


def test_report_command_rebuilds_the_same_page(demo_run: tuple[Path, str]) -> None:
    run, _ = demo_run
    page = run / "report" / "report.html"
    before = page.read_text()
    page.unlink()
    done = subprocess.run([SYNALIGN, "report", str(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"report: {page}"
    assert page.read_text() == before


def test_report_of_a_run_stopped_after_generate_says_it_is_not_weighted(tmp_path: Path) -> None:
    contents = {
        "root": str(tmp_path), "config_toml": 'name = "g"\n', "stages": {"generate": {}},
        "real": [{"id": "r0", "text": "a real review", "label": "pos"}],
        "demos": [], "attributes": [], "rejected": [], "weights": None, "alignment": None,
        "synthetic": [{"id": "s0", "text": "a synthetic review", "label": "pos",
                       "demo_ids": ["r0"]}],
    }  # fmt: skip
    html = RunReport().html(contents)
    assert "Not weighted yet" in html and "a synthetic review" in html
    assert "<h2>Rejected samples</h2>" in html and "None were rejected" in html


def test_a_hundred_thousand_samples_give_a_light_page(tmp_path: Path) -> None:
    """The tables show a seeded sample of at most max_rows per label; plots subsample."""
    rng = np.random.default_rng(0)
    n = 100_000
    labels = np.where(rng.random(n) < 0.5, "pos", "neg")
    synthetic = [
        {"id": f"s{i}", "text": f"sample {i} " + "word " * int(rng.integers(3, 30)),
         "label": str(labels[i]), "demo_ids": ["r0"], "attributes": {"tone": "dry"}}
        for i in range(n)
    ]  # fmt: skip
    weights = rng.random(n)
    contents = {
        "root": str(tmp_path), "config_toml": 'name = "big"\n', "stages": {"align": {}},
        "real": [{"id": "r0", "text": "a real review", "label": "pos"},
                 {"id": "r1", "text": "another real one", "label": "neg"}],
        "demos": [], "attributes": [], "rejected": [], "synthetic": synthetic,
        "weights": weights,
        "alignment": {"bandwidth": 1.0, "mmd2_before": {"pos": 0.1, "neg": 0.2},
                      "mmd2_after": {"pos": 0.05, "neg": 0.1},
                      "ess": {"pos": 4000.0, "neg": 3000.0}, "aligned_per_label": {}},
    }  # fmt: skip
    vectors = (rng.normal(size=(2, 16)), rng.normal(size=(n, 16)))
    page = RunReport(max_rows=100).html(contents, vectors)
    assert len(page) < 3_000_000
    assert page.count('<td class="text">sample ') == 2 * 100
    assert "100 of 49" in page or "100 of 50" in page
