"""A search's result files, written as one set: ``leaderboard.csv``, ``.json`` and ``scatter.png``.

All three are written to temporary files first (a full disk fails here, naming the file, and
leaves the previous set as it was); a marker file ``.leaderboard.writing`` is created, the three
are renamed onto their names, and the marker is removed. A run killed during the renames leaves
the marker: the next run (:func:`recover`, called once the folder is locked) removes the partial
set with the marker and any temporary files, and writes a complete set when it finishes.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from lga_lightning.search import leaderboard as lb
from lga_lightning.utils.files import named, remove_temporaries, write_temporary

OUTPUTS = ("leaderboard.csv", "leaderboard.json", "scatter.png")
WRITING = ".leaderboard.writing"
"""Present while the set is being renamed into place: the set on disk may be partial."""


def write_outputs(
    results_dir: str, rows: Sequence[lb.Row], summary: Mapping[str, Any], signal: str
) -> str | None:
    """Write the leaderboard CSV and JSON and the scatter plot, all or none.

    Args:
        results_dir: the search's folder.
        rows: the leaderboard (:func:`~lga_lightning.search.leaderboard.build`).
        summary: the search's summary (written in the JSON).
        signal: the ranking signal's name (the plot's axis).

    Returns:
        The plot's path, or ``None`` when no candidate has a finite signal (no plot; an old
        one is removed with the rest of the old set).

    Raises:
        OSError: naming the file that could not be written; the previous set is untouched.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> write_outputs(folder, [{"rank": 1, "signal": float("nan")}], {}, "lga")
        >>> sorted(os.listdir(folder))
        ['leaderboard.csv', 'leaderboard.json']
    """
    paths = {name: os.path.join(results_dir, name) for name in OUTPUTS}
    temps: dict[str, str] = {}
    fig = lb.figure(rows, signal)
    try:
        temps["leaderboard.csv"] = write_temporary(
            paths["leaderboard.csv"], lambda f: _dump_csv(f, rows), newline=""
        )
        temps["leaderboard.json"] = write_temporary(
            paths["leaderboard.json"],
            lambda f: json.dump({"summary": summary, "leaderboard": list(rows)}, f, indent=2),
        )
        if fig is not None:
            temps["scatter.png"] = write_temporary(
                paths["scatter.png"], lambda f: fig.savefig(f, dpi=100, format="png"), mode="wb"
            )
        marker = os.path.join(results_dir, WRITING)
        try:
            with open(marker, "w"):
                pass
        except OSError as err:
            raise named(err, marker) from err
        for name in OUTPUTS:
            if name in temps:
                os.replace(temps.pop(name), paths[name])
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(paths[name])  # no plot this time: not the old one either
        os.remove(marker)
    finally:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.remove(tmp)
    return paths["scatter.png"] if fig is not None else None


def recover(results_dir: str) -> list[str]:
    """Remove what a killed run left: temporary files, and a set it was renaming into place.

    Call it while holding the folder's lock, before the search writes.

    Returns:
        The files removed.
    """
    removed = remove_temporaries(results_dir, OUTPUTS)
    marker = os.path.join(results_dir, WRITING)
    if os.path.exists(marker):
        for name in (*OUTPUTS, WRITING):
            path = os.path.join(results_dir, name)
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed


def _dump_csv(f: Any, rows: Sequence[lb.Row]) -> None:
    writer = csv.DictWriter(f, fieldnames=lb.columns(rows), restval="")
    writer.writeheader()
    writer.writerows(rows)
