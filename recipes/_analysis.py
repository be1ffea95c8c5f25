"""The study's analysis: ground truth, one column per quantity, correlations, the report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lga_lightning.core.signals import SIGNALS
from lga_lightning.search.ground_truth import (
    NB201_COLUMNS,
    NASBench201,
    TableGroundTruth,
    nb201_table,
)
from lga_lightning.search.ground_truth.base import ArchNotFoundError
from recipes._combine import combined_column
from recipes._paired import default_pairs, format_paired, paired_table, parse_pair, write_paired_csv
from recipes._rank import BASELINES, Correlation, correlation_table, format_table, plot, write_csv

PROG = "lga-correlate"
RAW_NAME = "raw.jsonl"
CSV_NAME = "correlations.csv"
PNG_NAME = "correlations.png"
PAIRED_NAME = "paired.csv"


class StudyAnalysis:
    """The analysing half of :class:`recipes.correlate.CorrelationStudy` (its attributes)."""

    def truth_source(self) -> Any:
        """The ground truth: the benchmark file, the table, or the embedded NB201 table.

        Read once: the start-up check's copy serves the analysis.
        """
        cached = getattr(self, "_truth_source", None)
        if cached is not None:
            return cached
        if self.benchmark:
            source: Any = NASBench201(self.benchmark, trust_file=self.trust_benchmark_file)
        elif self.table:
            source = TableGroundTruth(self.table)
        else:
            source = nb201_table()
        self._truth_source = source
        return source

    def _check_ground_truth_files(self) -> None:
        """Fail before hours of measuring when the ground-truth file is missing or damaged."""
        for name, value in (("benchmark", self.benchmark), ("table", self.table)):
            if value and not Path(value).exists():
                raise FileNotFoundError(
                    f"`{name}` file not found: {value}"
                    + (
                        " (expected the official NAS-Bench-201 file "
                        "NAS-Bench-201-v1_1-096897.pth, or its folder)"
                        if name == "benchmark"
                        else " (a CSV/JSON table with an 'arch' column and accuracy columns)"
                    )
                )
        if (self.benchmark or self.table) and not self.analyse_only:
            source = self.truth_source()  # reads (and checks) the file
            if self.truth_column is None:
                source.check_query(self.dataset, self.split, self.hp)

    def ground_truth(self, records: Sequence[dict[str, Any]]) -> list[float]:
        """The accuracy of each record's architecture (NaN where the source has none)."""
        if self.own_epochs:
            return [float(r["epochs"][str(self.own_epochs)]["val_acc"]) for r in records]
        source = self.truth_source()
        column = self.truth_column
        if column is not None:
            column = NB201_COLUMNS.get(column, column) if not self.table else column
            if column not in source.columns:
                raise ValueError(
                    f"`truth_column` {self.truth_column!r} is not a column of {where(self)}; "
                    f"it has {source.columns}."
                )
        truth, missing = [], []
        for r in records:
            try:
                if column is not None:
                    truth.append(float(source.row(r["arch"])[column]))
                    continue
                truth.append(
                    source.accuracy(r["arch"], dataset=self.dataset, split=self.split, hp=self.hp)
                )
            except ArchNotFoundError:
                truth.append(math.nan)
                missing.append(r["arch"])
        if missing:
            print(f"{PROG}: no ground truth for {len(missing)} architecture(s), e.g. {missing[0]}")
        return truth

    def reference(self, records: Sequence[dict[str, Any]]) -> list[float] | None:
        """The benchmark's accuracy after ``reference_hp`` epochs of full training.

        What that much training would tell; ``None`` without such a column or with
        ``own_epochs``.
        """
        if self.own_epochs or not self.reference_hp or self.reference_hp == self.hp:
            return None
        source = self.truth_source()
        try:
            source.check_query(self.dataset, self.split, self.reference_hp)
        except (LookupError, ValueError):
            return None
        values = []
        for r in records:
            try:
                values.append(
                    source.accuracy(r["arch"], self.dataset, self.split, self.reference_hp)
                )
            except ArchNotFoundError:
                values.append(math.nan)
        return values

    def columns(self, records: Sequence[dict[str, Any]]) -> dict[tuple[str, str, int], list[float]]:
        """Every measured quantity as a column: ``(quantity, setting, epoch) -> values``."""
        cols: dict[tuple[str, str, int], list[float]] = {}
        reference = self.reference(records)
        for epoch in self.measure_at:
            key = str(epoch)
            for setting in self.settings:
                for metric in self.metrics:
                    cols[(metric, setting, epoch)] = [
                        _get(r, key, "ntk", setting, metric) for r in records
                    ]
            for proxy in self.proxies:
                cols[(proxy, f"b{self.proxy_batch}", epoch)] = [
                    _get(r, key, "proxies", proxy) for r in records
                ]
            for name in BASELINES:
                if SIGNALS[name].kind == "model":  # of the network: one value per arch
                    cols[(name, "-", epoch)] = [float(r[name]) for r in records]
                elif not (name == "train_loss" and epoch == 0):
                    cols[(name, "-", epoch)] = [_get(r, key, name) for r in records]
            if reference is not None:
                cols[(f"benchmark_{self.reference_hp}ep", "-", epoch)] = reference
        for label, terms in self.combine:
            epoch = max(e for _, e in terms)
            cols[(label, self.combine_by, epoch)] = combined_column(cols, terms, self.combine_by)
        return cols

    def analyse(self, records: Sequence[dict[str, Any]]) -> list[Correlation]:
        """Correlate, print the table and the cost by signal, write the CSV and the plot."""
        if not records:
            raise ValueError(f"no measured architectures in {self.output_dir / RAW_NAME}.")
        truth = self.ground_truth(records)
        signs = {label: 1 for label, _ in self.combine}
        if self.reference_hp:
            signs[f"benchmark_{self.reference_hp}ep"] = 1
        columns = self.columns(records)
        rows = correlation_table(columns, truth, signs, self.bootstrap)
        query = (
            f"column {self.truth_column}"
            if self.truth_column
            else f"{self.dataset}, split={self.split}, hp={self.hp}"
        )
        source = (
            f"own training ({self.own_epochs} epochs)"
            if self.own_epochs
            else f"{where(self)} [{query}]"
        )
        print(f"\nRank correlation with accuracy from {source}, {len(records)} architectures")
        print(status_line(records))
        print(
            "(sign: the sign expected of a useful predictor; Kendall tau-b and Spearman rho; "
            "undefined values of a signed quantity rank worst)"
        )
        print(format_table(rows))
        print(_cost_line(records))
        write_csv(rows, self.output_dir / CSV_NAME)
        written = [str(self.output_dir / CSV_NAME)]
        if self.bootstrap:
            pairs = (
                [parse_pair(text, columns, self.measure_at) for text in self.pairs]
                if self.pairs
                else default_pairs(columns)
            )
            paired = paired_table(columns, truth, pairs, signs, self.bootstrap)
            print(
                f"\nPaired differences in signed tau (95% interval: {paired[0]['method']}; "
                "* excludes 0)"
                if paired
                else ""
            )
            print(format_paired(paired))
            write_paired_csv(paired, self.output_dir / PAIRED_NAME)
            written.append(str(self.output_dir / PAIRED_NAME))
        if self.make_plot:
            title = f"{len(records)} architectures; ground truth: {source}"
            plot(rows, self.output_dir / PNG_NAME, title=title)
            written.append(str(self.output_dir / PNG_NAME))
        print(f"wrote {', '.join(written)}; raw values in {self.output_dir / RAW_NAME}")
        return rows


def _cost_line(records: Sequence[dict[str, Any]]) -> str:
    """Mean wall time per architecture by signal (all seeds together).

    Example:
        >>> _cost_line([{"signal_seconds": {"train": 2.0, "kernel": 1.0}}])
        'cost per architecture: train 2.00 s, kernel 1.00 s'
    """
    totals: dict[str, float] = {}
    for r in records:
        for name, seconds in r.get("signal_seconds", {}).items():
            totals[name] = totals.get(name, 0.0) + seconds
    if not totals:
        return "cost per architecture: not recorded"
    parts = [f"{name} {seconds / len(records):.2f} s" for name, seconds in totals.items()]
    return "cost per architecture: " + ", ".join(parts)


def _get(record: dict[str, Any], *path: str) -> float:
    node: Any = record.get("epochs", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return math.nan
        node = node[key]
    return float(node)


def where(study: Any) -> str:
    """The ground truth's source, for messages and titles."""
    return study.benchmark or study.table or "NAS-Bench-201 table (embedded)"


def status_line(records: Sequence[dict[str, Any]]) -> str:
    """How many architectures trained fine, diverged, or have an undefined LGA (counted apart).

    ``undefined``: status ``ok`` but an LGA that is nan at some measured epoch and setting.

    Example:
        >>> ok = {"status": "ok", "epochs": {"1": {"ntk": {"n8-train": {"lga": 0.5}}}}}
        >>> nan = {"status": "ok", "epochs": {"1": {"ntk": {"n8-train": {"lga": math.nan}}}}}
        >>> status_line([ok, nan, {"status": "diverged", "epochs": {}}])
        'status: 1 ok, 0 failed, 1 diverged, 1 undefined (lga nan)'
    """
    counts = {"ok": 0, "failed": 0, "diverged": 0, "undefined": 0}
    for record in records:
        status = record.get("status", "ok")
        if status == "ok" and _lga_undefined(record):
            status = "undefined"
        counts[status if status in counts else "failed"] += 1
    return (
        f"status: {counts['ok']} ok, {counts['failed']} failed, {counts['diverged']} diverged, "
        f"{counts['undefined']} undefined (lga nan)"
    )


def _lga_undefined(record: dict[str, Any]) -> bool:
    for entry in record.get("epochs", {}).values():
        for values in entry.get("ntk", {}).values():
            lga = values.get("lga")
            if isinstance(lga, float) and math.isnan(lga):
                return True
    return False
