"""Build a release of the reference application on the controller.

    python reference_app/build_release.py wheel --version 1.0.0 --output DIR
    python reference_app/build_release.py archive --version 1.1.0 --output DIR

``wheel`` writes ``bmms_reference-VERSION-py3-none-any.whl``; ``archive``
writes ``bmms_reference-VERSION-source.tar.gz``, the source tree with
``src/`` and ``requirements.txt`` at its root, as the web role's archive
mode expects. The version is written into a copy of the tree, never into
this checkout, and the build runs in that copy, so the checkout stays
clean. Building a wheel needs setuptools and wheel in the running Python
(both pinned in requirements-dev.txt) and no network access.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent
VERSION_LINE = re.compile(r'^__version__ = "[^"]*"$', re.MULTILINE)
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist", "*.egg-info", "static-root")


def copy_tree(version: str, target: Path) -> Path:
    """Copy the project to target/bmms_reference with its version set."""
    tree = target / "bmms_reference"
    shutil.copytree(SOURCE, tree, ignore=IGNORED)
    init = tree / "src" / "bmms_reference" / "__init__.py"
    text, count = VERSION_LINE.subn(f'__version__ = "{version}"', init.read_text(encoding="utf-8"))
    if count != 1:
        raise SystemExit(f"{init}: expected one __version__ line, found {count}")
    init.write_text(text, encoding="utf-8")
    return tree


def build_wheel(tree: Path, output: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--wheel-dir", str(output), str(tree)],
        check=True,
    )
    return max(output.glob("bmms_reference-*.whl"), key=lambda path: path.stat().st_mtime)


def build_archive(tree: Path, version: str, output: Path) -> Path:
    archive = output / f"bmms_reference-{version}-source.tar.gz"
    with tarfile.open(archive, "w:gz") as packed:
        for path in sorted(tree.rglob("*")):
            packed.add(path, arcname=str(path.relative_to(tree)), recursive=False)
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a wheel or a source archive of the reference application.")
    parser.add_argument("kind", choices=["wheel", "archive"], help="what to build")
    parser.add_argument("--version", required=True, help="version written into the release, e.g. 1.1.0")
    parser.add_argument("--output", type=Path, required=True, help="directory that receives the file")
    arguments = parser.parse_args(argv)

    arguments.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tree = copy_tree(arguments.version, Path(scratch))
        if arguments.kind == "wheel":
            built = build_wheel(tree, arguments.output)
        else:
            built = build_archive(tree, arguments.version, arguments.output)
    print(built)
    return 0


if __name__ == "__main__":
    sys.exit(main())
