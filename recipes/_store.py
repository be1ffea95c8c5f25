"""The study's resumable store, ``raw.jsonl``: a header with the fingerprint, then the records.

The first line is ``{"kind": "study", "fingerprint": {...}}``, the settings that change the
measured values; each following line is one architecture's record (``"kind": "arch"``). A rerun
resumes the store only when its fingerprint equals the study's (entries newer than the store
count with the value the store ran with, :data:`SETTING_DEFAULTS`); a torn last line (a crash
mid-write) is dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recipes._analysis import PROG
from recipes._files import append_jsonl, drop_torn_tail, read_jsonl

SETTING_DEFAULTS: dict[str, Any] = {
    "init": "pytorch",
    "probe": None,
    "val_source": "split",
    "proxies": [],
    "proxy_batch": None,
    "eval_order": "file",
}
"""Fingerprint entries newer than some stored studies, with the value those studies ran with."""

ANALYSE_ANYWAY = ("eval_order",)
"""Fingerprint entries that change only the ``val_acc`` baseline: ``analyse_only`` reads a store
that differs in them, with a note, instead of refusing it."""


def resume(
    raw_path: Path, fingerprint: dict[str, Any], analyse_only: bool = False
) -> dict[str, dict[str, Any]]:
    """The records of the store at ``raw_path``, ``arch -> record``; a new store gets a header.

    Args:
        raw_path: the store (``<output_dir>/raw.jsonl``); its folder must exist.
        fingerprint: the study's settings (:meth:`recipes.correlate.CorrelationStudy.fingerprint`).
        analyse_only: read only: a missing store is an error, and a store differing only in
            :data:`ANALYSE_ANYWAY` is read with a note.

    Raises:
        ValueError: when the store holds a study with other settings.
        FileNotFoundError: with ``analyse_only``, when the store holds nothing.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "raw.jsonl"
        >>> resume(path, {"epochs": [0]})
        {}
        >>> append_jsonl(path, {"kind": "arch", "arch": "a", "params": 3})
        >>> resume(path, {"epochs": [0]})
        {'a': {'arch': 'a', 'kind': 'arch', 'params': 3}}
    """
    drop_torn_tail(raw_path)
    lines = read_jsonl(raw_path)
    header = {"kind": "study", "fingerprint": fingerprint}
    if not lines:
        if analyse_only:
            raise FileNotFoundError(f"`analyse_only`: no measurements in {raw_path}.")
        append_jsonl(raw_path, header)
        return {}
    stored = json.loads(json.dumps(lines[0].get("fingerprint")))
    wanted = json.loads(json.dumps(header["fingerprint"]))
    # settings added since a study was stored: absent there means it ran with the default
    stored = {**{k: v for k, v in SETTING_DEFAULTS.items() if k in wanted}, **(stored or {})}
    diff = sorted(k for k in wanted if stored.get(k) != wanted[k])
    if analyse_only and diff and set(diff) <= set(ANALYSE_ANYWAY):
        print(
            f"{PROG}: {raw_path} was measured with validation batches in file order "
            f"(differs in {diff}); its `val_acc` rows are suspect on class-sorted data."
        )
        stored = wanted
    if lines[0].get("kind") != "study" or stored != wanted:
        raise ValueError(
            f"{raw_path} holds a study with other settings (differs in {diff}); choose "
            "another `output_dir`, or restore those settings to resume it."
        )
    return {r["arch"]: r for r in lines[1:] if r.get("kind") == "arch"}
