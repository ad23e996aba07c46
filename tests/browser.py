"""A report page as a person's browser shows it: headless Chromium (Debian's package),
for tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Records script errors and console.error calls before the page's own content runs, and
# every image's decoded size once the page has loaded, as attributes of <body>.
_PROBE_HEAD = (
    "<script>window.__errors = [];"
    "window.addEventListener('error', e => window.__errors.push(String(e.message)));"
    "const __err = console.error;"
    "console.error = (...a) => { window.__errors.push(a.join(' ')); __err(...a); };</script>"
)
_PROBE_BODY = (
    "<script>window.addEventListener('load', () => {"
    "document.body.setAttribute('data-images', Array.from(document.images)"
    ".map(i => i.naturalWidth + 'x' + i.naturalHeight).join(','));"
    "document.body.setAttribute('data-errors', window.__errors.join(' | '));"
    "});</script></body>"
)
_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@dataclass
class Rendered:
    dom: str
    images: list[tuple[int, int]]
    errors: str
    screenshot: np.ndarray


def render(page: Path, workdir: Path, height: int = 2400) -> Rendered:
    """Load `page` from disk (offline) and return the DOM after load, each image's natural
    size, script or console errors, and a 1300-pixel-wide screenshot as grey levels."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is part of the test set-up (apt-get install chromium)"
    text = page.read_text(encoding="utf-8")
    probe = text.replace("<head>", "<head>" + _PROBE_HEAD, 1).replace("</body>", _PROBE_BODY)
    assert probe.count("<script>") >= 2, "the page has no <head> or </body>"
    html = workdir / "probed.html"
    html.write_text(probe, encoding="utf-8")
    flags = [*_FLAGS, f"--user-data-dir={workdir / 'profile'}"]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    sizes = re.search(r'data-images="([^"]*)"', dom)
    errors = re.search(r'data-errors="([^"]*)"', dom)
    assert sizes and errors, dom[:500]
    images = [tuple(map(int, s.split("x"))) for s in sizes.group(1).split(",") if s]
    shot = workdir / "page.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", f"--window-size=1300,{height}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    return Rendered(dom, images, errors.group(1), pixels)  # type: ignore[arg-type]
