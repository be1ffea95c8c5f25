"""docs/extending.md runs as written: its Python blocks, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

from lga_lightning.core.signals import SIGNALS, unregister

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_extension_examples_run_as_written(tmp_path, monkeypatch):
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 6  # proxy, space, its search, strategy, sink, logger
    monkeypatch.chdir(tmp_path)  # the examples write their runs below the working directory
    namespace: dict = {}
    try:
        for number, block in enumerate(blocks, start=1):
            exec(compile(block, f"{DOC.name} block {number}", "exec"), namespace)
    finally:
        if "conv_count" in SIGNALS:
            unregister("conv_count")
    assert (tmp_path / "extending_runs" / "widths").is_dir()
    assert (tmp_path / "extending_runs" / "sinks" / "mirror.jsonl").is_file()
    assert len(namespace["best_candidate"].lines) >= 1
