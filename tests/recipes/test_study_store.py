"""lga-correlate's store: read without writing, resume after a crash, refuse a foreign file."""

from __future__ import annotations

import json

import pytest

from recipes._store import resume, stored_records

FINGERPRINT = {"measure_at": [0], "probe_sizes": [8]}
HEADER = json.dumps({"fingerprint": FINGERPRINT, "kind": "study"}, sort_keys=True) + "\n"
RECORD = json.dumps({"arch": "a", "kind": "arch", "params": 3}, sort_keys=True) + "\n"


def test_analyse_only_reads_a_store_with_a_torn_tail_and_leaves_it_as_it_is(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text(HEADER + RECORD + '{"arch": "b", "ki')
    before = path.read_bytes()
    assert list(resume(path, FINGERPRINT, analyse_only=True)) == ["a"]
    assert path.read_bytes() == before


def test_a_resume_cuts_the_torn_tail_and_appends_on_a_fresh_line(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text(HEADER + RECORD + '{"arch": "b", "ki')
    assert list(resume(path, FINGERPRINT)) == ["a"]
    assert path.read_text() == HEADER + RECORD


def test_a_torn_header_alone_starts_the_store_afresh(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text(HEADER[:25])  # the crash came while the header was written
    assert resume(path, FINGERPRINT) == {}
    assert path.read_text() == HEADER


def test_a_store_of_other_settings_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text(HEADER + RECORD + '{"arch": "b", "ki')
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"differs in \['probe_sizes'\]"):
        stored_records(path, {**FINGERPRINT, "probe_sizes": [16]})
    with pytest.raises(ValueError, match=r"differs in \['probe_sizes'\]"):
        resume(path, {**FINGERPRINT, "probe_sizes": [16]})
    assert path.read_bytes() == before
