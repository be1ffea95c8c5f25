"""Check that a built wheel carries the shipped NAS-Bench-201 table, its credits and the licence.

Usage: ``python .ci/check_wheel.py dist/*.whl``. Exits with status 1, naming what is missing,
unless every wheel given holds

* the embedded ground-truth table, ``lga_lightning/search/ground_truth/data/*.csv.gz``;
* its licence and credit text, ``lga_lightning/search/ground_truth/data/LICENSE-NB201.txt``,
  next to it (the package reads it from there) and among the wheel's licence files;
* the project's ``LICENSE`` (Apache-2.0) among the wheel's licence files.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import zipfile
from pathlib import Path

DATA = "lga_lightning/search/ground_truth/data"
CREDITS = f"{DATA}/LICENSE-NB201.txt"


def problems(wheel: Path) -> list[str]:
    """What ``wheel`` lacks of the table, its credits and the licence (empty when complete).

    Args:
        wheel: path of a ``.whl`` file.

    Returns:
        One sentence per missing or empty file.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "x-0-py3-none-any.whl"
        ...     zipfile.ZipFile(path, "w").close()
        ...     len(problems(path))
        4
    """
    with zipfile.ZipFile(wheel) as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    dist_info = {name.split("/", 1)[0] for name in sizes if ".dist-info/" in name}
    licenses = [f"{d}/licenses" for d in sorted(dist_info)] or ["<no .dist-info>/licenses"]
    found: list[str] = []
    tables = [n for n in sizes if fnmatch.fnmatch(n, f"{DATA}/*.csv.gz") and sizes[n] > 0]
    if not tables:
        found.append(f"missing: the embedded NB201 table ({DATA}/*.csv.gz)")
    wanted = {
        CREDITS: "the table's licence and credit text",
        f"{licenses[0]}/{CREDITS}": "the table's licence among the licence files",
        f"{licenses[0]}/LICENSE": "the project LICENSE among the licence files",
    }
    for name, what in wanted.items():
        if sizes.get(name, 0) == 0:
            found.append(f"missing: {what} ({name})")
    return found


def main(argv: list[str] | None = None) -> int:
    """Check every wheel named on the command line; ``0`` when all are complete."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", nargs="+", type=Path, help="the .whl files to check")
    args = parser.parse_args(argv)
    status = 0
    for wheel in args.wheels:
        missing = problems(wheel)
        for problem in missing:
            print(f"{wheel}: {problem}", file=sys.stderr)
        if missing:
            status = 1
        else:
            print(f"{wheel}: table, credits and LICENSE present")
    return status


if __name__ == "__main__":
    sys.exit(main())
