"""Build the course website and set up its browser check (called by `make book` and `make test`).

    python tools/site.py build [--no-execute]   # fetch widget scripts, then jupyter-book build -W -n --keep-going
    python tools/site.py browser-deps           # install Debian's chromium if it is missing (tests need it)

Widgets on the static site need require.js and @jupyter-widgets/html-manager. We fetch both from the npm
registry with `npm pack` (pinned versions) into `_build/site_extra/_widgets/`, which Sphinx copies to the
site root through `html_extra_path`. They are deliberately not in `_static/`: Jupyter Book would include
every `_static/*.js` on every page and the widgets would be drawn twice.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET_DIR = ROOT / "_build" / "site_extra" / "_widgets"
NPM_PACKAGES = {"@jupyter-widgets/html-manager@1.0.15": "package/dist/", "requirejs@2.3.8": "package/require.js"}


def fetch_widget_scripts() -> None:
    if (WIDGET_DIR / "embed-amd.js").exists() and (WIDGET_DIR / "require.js").exists():
        return
    if shutil.which("npm") is None:
        sys.exit("npm is needed to fetch the widget scripts for the website; install Node.js (apt-get install nodejs npm)")
    staging = Path(tempfile.mkdtemp(dir=ROOT / "_build" if (ROOT / "_build").exists() else None))
    try:
        for spec, member_prefix in NPM_PACKAGES.items():
            out = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(staging)],
                                 check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            with tarfile.open(staging / out) as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.name.startswith(member_prefix):
                        member.name = Path(member.name).name
                        tar.extract(member, staging / "files", filter="data")
        WIDGET_DIR.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(WIDGET_DIR, ignore_errors=True)
        (staging / "files").rename(WIDGET_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build(execute: bool = True, output: Path | None = None) -> int:
    """`jupyter-book build . -W -n --keep-going`; warnings are errors.

    With execute=False the stored notebook outputs are rendered as they are (the tests do this, since
    nbval has already executed every notebook); `make book` executes them through the cache.
    """
    fetch_widget_scripts()
    command = [sys.executable, "-m", "jupyter_book", "build", str(ROOT), "-W", "-n", "--keep-going"]
    if not execute:
        config = (ROOT / "_config.yml").read_text().replace("execute_notebooks: cache", "execute_notebooks: "'"off"')
        config_path = ROOT / "_build" / "_config.no-execute.yml"
        config_path.write_text(config)
        command += ["--config", str(config_path)]
    if output is not None:
        command += ["--path-output", str(output)]
    return subprocess.call(command, env=dict(os.environ, HF_HUB_OFFLINE="1"), cwd=ROOT)


def browser_deps() -> None:
    if Path("/usr/bin/chromium").exists():
        return
    if os.geteuid() != 0:
        sys.exit("Debian's chromium is missing; install it with `sudo apt-get install -y chromium` and rerun")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "browser-deps", "fetch-widgets"])
    parser.add_argument("--no-execute", action="store_true", help="render the stored outputs without executing")
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: _build)")
    args = parser.parse_args()
    if args.command == "build":
        sys.exit(build(execute=not args.no_execute, output=args.output))
    elif args.command == "browser-deps":
        browser_deps()
    else:
        fetch_widget_scripts()
