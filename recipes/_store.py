"""The study's resumable store, ``raw.jsonl``: a header with the fingerprint, then the records.

The first line is ``{"kind": "study", "fingerprint": {...}}``, the settings that change the
measured values; each following line is one architecture's record (``"kind": "arch"``). A rerun
resumes the store only when its fingerprint equals the study's (entries newer than the store
count with the value the store ran with, :data:`SETTING_DEFAULTS`); a torn last line (a crash
mid-write) is dropped. :func:`read_store` checks all of it before anything is written: a file
that is not such a store (not text, no header, a line that is not a record) is refused, not cut.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lga_lightning._compat import upgrade_0_2
from lga_lightning.utils.files import append_jsonl
from recipes._analysis import PROG
from recipes._files import complete_text, drop_torn_tail, parse_jsonl

SETTING_DEFAULTS: dict[str, Any] = {
    "init": "pytorch",
    "probe": None,
    "val_source": "split",
    "proxies": [],
    "proxy_batch": None,
    "eval_order": "file",
}
"""Fingerprint entries newer than some stored studies, with the value those studies ran with."""

TORN_HEADER_START = '{"fingerprint": '
"""How a header line starts (keys are sorted): a lone torn line starting so is a cut header."""

ANALYSE_ANYWAY = ("eval_order",)
"""Fingerprint entries that change only the ``val_acc`` baseline: ``analyse_only`` reads a store
that differs in them, with a note, instead of refusing it."""


def read_store(raw_path: Path) -> list[dict[str, Any]]:
    r"""The store's complete lines, checked; reads only.

    A torn last line is left out (a crash mid-write); a torn header with no line before it
    (a crash while a new store was started) reads as an empty store. A store written by 0.2
    reads with 0.3's keys (:func:`lga_lightning._compat.upgrade_0_2`).

    Args:
        raw_path: the store (``<output_dir>/raw.jsonl``); absent reads as empty.

    Raises:
        ValueError: naming the file, the line and the fix, when the file is not UTF-8 text, holds
            text but no complete line, starts with anything but a header
            (``{"kind": "study", "fingerprint": {...}}``), or holds a line that is not an
            architecture record (``{"kind": "arch", "arch": "..."}``).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "raw.jsonl"
        >>> _ = path.write_text('{"kind": "arch", "arch": "a"}\n')
        >>> try:
        ...     read_store(path)
        ... except ValueError as err:
        ...     print(str(err).split(" (")[0].split("/")[-1])
        raw.jsonl, line 1, is not a lga-correlate header
    """
    if not raw_path.exists():
        return []
    if not raw_path.is_file():
        raise ValueError(f"{raw_path} is not a file; choose another `output_dir`.")
    text = complete_text(raw_path)
    complete, _, torn = text.rpartition("\n")
    if not complete.strip() and torn.strip():
        if torn.startswith(TORN_HEADER_START):
            return []  # the header's write was cut short: nothing was measured
        raise ValueError(
            f"{raw_path} holds {len(torn)} characters and no complete line, so it is not a store "
            f"{PROG} wrote (its first line is a header): move it away, or choose another "
            "`output_dir`."
        )
    numbered = parse_jsonl(text, raw_path)  # the text read above, not a second read
    for index, (number, line) in enumerate(numbered):
        if index == 0 and not (
            line.get("kind") == "study" and isinstance(line.get("fingerprint"), dict)
        ):
            raise ValueError(
                f'{raw_path}, line {number}, is not a {PROG} header ({{"kind": "study", '
                '"fingerprint": {...}}), so the file was not written by '
                f"{PROG} or was edited: move it away, or choose another `output_dir`."
            )
        if index > 0 and not (line.get("kind") == "arch" and isinstance(line.get("arch"), str)):
            raise ValueError(
                f'{raw_path}, line {number}, is not an architecture record ({{"kind": "arch", '
                '"arch": "..."}); the file was edited or damaged: fix or delete that line, or '
                "choose another `output_dir`."
            )
    return [upgrade_0_2(line) for _, line in numbered]  # a 0.2 store reads with 0.3's keys


def resume(
    raw_path: Path, fingerprint: dict[str, Any], analyse_only: bool = False
) -> dict[str, dict[str, Any]]:
    """The records of the store at ``raw_path``, ``arch -> record``; a new store gets a header.

    The store is checked (:func:`stored_records`) before anything is written; ``analyse_only``
    writes nothing at all.

    Args:
        raw_path: the store (``<output_dir>/raw.jsonl``); its folder must exist.
        fingerprint: the study's settings (:meth:`recipes.correlate.CorrelationStudy.fingerprint`).
        analyse_only: read only: a missing store is an error, and a store differing only in
            :data:`ANALYSE_ANYWAY` is read with a note.

    Raises:
        ValueError: when the store is damaged or holds a study with other settings.
        FileNotFoundError: with ``analyse_only``, when the store holds nothing.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "raw.jsonl"
        >>> resume(path, {"measure_at": [0]})
        {}
        >>> append_jsonl(path, {"kind": "arch", "arch": "a", "num_params": 3})
        >>> resume(path, {"measure_at": [0]})
        {'a': {'arch': 'a', 'kind': 'arch', 'num_params': 3}}
    """
    records = stored_records(raw_path, fingerprint, analyse_only)
    if analyse_only:
        return records
    if records:
        drop_torn_tail(raw_path)
        return records
    if raw_path.exists():
        raw_path.write_bytes(b"")  # a header alone, or a torn one: start the store afresh
    append_jsonl(raw_path, {"kind": "study", "fingerprint": fingerprint})
    return {}


def stored_records(
    raw_path: Path, fingerprint: dict[str, Any], analyse_only: bool = False
) -> dict[str, dict[str, Any]]:
    """What :func:`resume` would return, without writing: checks the store and its fingerprint.

    Raises:
        ValueError: when the store is damaged or holds a study with other settings.
        FileNotFoundError: with ``analyse_only``, when the store holds nothing.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "raw.jsonl"
        >>> stored_records(path, {"measure_at": [0]}), path.exists()
        ({}, False)
    """
    lines = read_store(raw_path)
    if not lines:
        if analyse_only:
            raise FileNotFoundError(f"`analyse_only`: no measurements in {raw_path}.")
        return {}
    stored = json.loads(json.dumps(lines[0]["fingerprint"]))
    wanted = json.loads(json.dumps(fingerprint))
    # settings added since a study was stored: absent there means it ran with the default
    stored = {**{k: v for k, v in SETTING_DEFAULTS.items() if k in wanted}, **stored}
    diff = sorted(k for k in wanted if stored.get(k) != wanted[k])
    if analyse_only and diff and set(diff) <= set(ANALYSE_ANYWAY):
        print(
            f"{PROG}: {raw_path} was measured with validation batches in file order "
            f"(differs in {diff}); its `val_acc` rows are suspect on class-sorted data."
        )
        stored = wanted
    if stored != wanted:
        raise ValueError(
            f"{raw_path} holds a study with other settings (differs in {diff}); choose "
            "another `output_dir`, or restore those settings to resume it."
        )
    return {r["arch"]: r for r in lines[1:]}
