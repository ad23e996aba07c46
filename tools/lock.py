"""Write the set-up's lock: the exact version of every package `make setup` installs.

pip resolves the set-up's requirements from scratch (`pip install --dry-run
--ignore-installed --report`, in a throw-away virtual environment with the newest pip),
so the lock holds what a fresh machine would get today within pyproject.toml's ranges.
`make setup` then installs with `pip install -c constraints.txt`, so every machine runs
the versions the test suite passed on. Run through `make lock`, then `make test`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

HEADER = """\
# Exact versions the set-up installs (`pip install -c constraints.txt`); the test suite
# passed on them. pyproject.toml keeps the ranges for installing SynAlign elsewhere.
# Regenerate with `make lock`, then run `make test` before committing.
# Resolved {date} by tools/lock.py: pip {pip} (`install --dry-run --ignore-installed
# --report`), CPython {python}, {system} {machine}, from:
#   {with_deps}
#   --no-deps {no_deps}
"""


def resolve(pip: list[str], requirements: list[str], no_deps: bool) -> dict[str, str]:
    """Name -> version of everything pip would install for `requirements`."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [*pip, "install", "--dry-run", "--ignore-installed", "--quiet"]
        alone = ["--no-deps", "--ignore-requires-python"] if no_deps else []
        command += ["--report", str(report), *alone, *requirements]
        subprocess.run(command, check=True)
        installs = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("constraints.txt"))
    parser.add_argument("--project", default="synalign", help="left out: installed editable")
    parser.add_argument("--no-deps", nargs="*", default=[], help="installed without deps")
    parser.add_argument("requirements", nargs="+", help="installed with their dependencies")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        venv.create(tmp, with_pip=True)
        python = str(Path(tmp) / "bin" / "python")
        pip = [python, "-m", "pip"]
        subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
        pip_version = subprocess.run(
            [python, "-c", "import pip; print(pip.__version__)"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        pins = {"pip": pip_version}
        pins.update(resolve(pip, args.requirements, no_deps=False))
        if args.no_deps:
            pins.update(resolve(pip, args.no_deps, no_deps=True))
    pins.pop(args.project, None)
    header = HEADER.format(
        date=datetime.date.today().isoformat(),
        pip=pip_version,
        python=platform.python_version(),
        system=platform.system(),
        machine=platform.machine(),
        with_deps=" ".join(args.requirements),
        no_deps=" ".join(args.no_deps),
    )
    body = "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    args.out.write_text(header + body)
    print(f"wrote {len(pins)} pins to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
