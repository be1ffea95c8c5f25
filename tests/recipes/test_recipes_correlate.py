"""lga-correlate: correlations equal SciPy's on the stored numbers; resume; baselines; errors."""

from __future__ import annotations

import csv
import json
import math
import sys

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from lga_lightning.core.kernel import empirical_ntk
from lga_lightning.search.spaces import NB201Space, nb201
from lga_lightning.training.sinks import ListSink
from recipes import correlate
from recipes._baselines import count_flops

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|",
]
ACCURACY = [71.5, 64.0, 80.25, 55.0, 90.0, 62.5]


@pytest.fixture(autouse=True)
def _argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lga-correlate"])


def args_for(tmp_path, archs=ARCHS, extra=()):
    table = tmp_path / "truth.csv"
    if not table.exists():
        with table.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["arch", "cifar10/ori-test/200"])
            writer.writerows(zip(ARCHS, ACCURACY, strict=True))
    return [
        "--data", "lga_lightning.data.DigitsDataModule",
        "--data.resize", "8", "--data.channels", "3", "--data.batch_size", "64",
        "--space.C", "4", "--space.N", "1",
        "--archs", json.dumps(list(archs)),
        "--measure_at", "[0, 1]", "--probe_sizes", "[10]", "--bn_modes", "[train, eval]",
        "--limit_train_batches", "3",
        "--table", str(table),
        "--output_dir", str(tmp_path / "out"),
        *extra,
    ]  # fmt: skip


def raw_records(tmp_path):
    lines = (tmp_path / "out" / "raw.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def csv_rows(tmp_path):
    with (tmp_path / "out" / "correlations.csv").open() as f:
        return {(r["quantity"], r["setting"], int(r["epoch"])): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("study")
    rows = correlate.run(args_for(tmp_path))
    return tmp_path, rows


def test_correlations_equal_scipy_on_the_stored_numbers(study):
    tmp_path, rows = study
    records = raw_records(tmp_path)
    assert records[0]["kind"] == "study"
    by_arch = {r["arch"]: r for r in records[1:]}
    assert list(by_arch) == ARCHS
    table = csv_rows(tmp_path)
    checked = 0
    for setting in ("n10-train", "n10-eval"):
        for epoch in (0, 1):
            for metric in ("lga", "condition_number", "frobenius_norm", "mean", "trace"):
                values = [by_arch[a]["epochs"][str(epoch)]["ntk"][setting][metric] for a in ARCHS]
                keep = [i for i, v in enumerate(values) if not math.isnan(v)]
                x = [values[i] for i in keep]
                y = [ACCURACY[i] for i in keep]
                row = table[(metric, setting, epoch)]
                assert int(row["n"]) == len(keep)
                if len(set(x)) > 1:
                    tau = stats.kendalltau(x, y, variant="b").statistic
                    rho = stats.spearmanr(x, y).statistic
                    assert float(row["kendall_tau"]) == pytest.approx(tau, abs=1e-12)
                    assert float(row["spearman_rho"]) == pytest.approx(rho, abs=1e-12)
                    checked += 1
    assert checked >= 10
    params = [by_arch[a]["params"] for a in ARCHS]
    row = table[("params", "-", 1)]
    assert float(row["kendall_tau"]) == pytest.approx(stats.kendalltau(params, ACCURACY).statistic)
    # the sign convention: condition number is expected to correlate negatively
    cond = table[("condition_number", "n10-train", 1)]
    assert int(cond["expected_sign"]) == -1
    assert float(cond["signed_tau"]) == pytest.approx(-float(cond["kendall_tau"]))
    # the returned rows are the CSV's rows
    assert {(r.quantity, r.setting, r.epoch) for r in rows} == set(table)


def test_stored_values_match_an_independent_measurement(study):
    tmp_path, _ = study
    from lga_lightning.core.functional import lga
    from lga_lightning.data import DigitsDataModule

    record = raw_records(tmp_path)[1]
    torch.manual_seed(42)
    net = nb201.build(record["arch"], C=4, N=1, num_classes=10, in_channels=3)
    assert record["num_params"] == sum(p.numel() for p in net.parameters())
    assert record["params"] == record["num_params"]  # the signal: every parameter trains
    dm = DigitsDataModule(resize=8, channels=3, batch_size=64)
    x, y = dm.probe_batch(10, seed=42)
    expected = lga(empirical_ntk(net, x, implementation="loop"), y)
    assert record["epochs"]["0"]["ntk"]["n10-train"]["lga"] == pytest.approx(expected, rel=1e-4)
    assert math.isnan(record["epochs"]["0"]["train_loss"])
    assert math.isfinite(record["epochs"]["1"]["train_loss"])
    assert 0.0 <= record["epochs"]["1"]["val_acc"] <= 1.0


def test_resume_and_reanalysis_reuse_the_raw_file(study, tmp_path, capsys):
    source, _ = study
    out = tmp_path / "out"
    out.mkdir()
    lines = (source / "out" / "raw.jsonl").read_text().splitlines(keepends=True)
    # a crash after four architectures, in the middle of writing the fifth line
    (out / "raw.jsonl").write_text("".join(lines[:5]) + lines[5][:40])
    (tmp_path / "truth.csv").write_text((source / "truth.csv").read_text())
    correlate.run(args_for(tmp_path))
    log = capsys.readouterr().out
    assert log.count("[5/6]") == 1 and "[1/6]" not in log  # only the missing two measured
    assert (out / "raw.jsonl").read_text().splitlines()[:5] == [s.rstrip("\n") for s in lines[:5]]
    assert csv_rows(tmp_path) == csv_rows(source)  # same numbers as the uninterrupted run
    # re-analysis measures nothing
    before = (out / "raw.jsonl").read_bytes()
    correlate.run(args_for(tmp_path, extra=["--analyse_only", "true"]))
    assert "[1/6]" not in capsys.readouterr().out
    assert (out / "raw.jsonl").read_bytes() == before


def test_other_settings_refuse_to_mix_with_a_stored_study(study, tmp_path, capsys):
    source, _ = study
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "raw.jsonl").write_text((source / "out" / "raw.jsonl").read_text())
    with pytest.raises(SystemExit) as exit_info:
        correlate.run(args_for(tmp_path, extra=["--probe_sizes", "[12]"]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "settings" in err and "output_dir" in err
    # other images (a datamodule argument) are other settings too
    with pytest.raises(SystemExit):
        correlate.run(args_for(tmp_path, extra=["--data.resize", "16"]))
    assert "differs in ['data']" in capsys.readouterr().err


def test_flops_counted_by_hand():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    )
    net.train()
    expected = 8 * 8 * 8 * (3 * 9) + 8 * 4 * 4 * (4 * 9) + 5 * 128
    assert count_flops(net, (3, 8, 8)) == expected
    assert net.training and net[1].num_batches_tracked.item() == 0  # left as it was


# ---------------------------------------------------------------------------------------------
# several model seeds

SEEDS = [42, 7]
SEED_ARGS = ["--model_seeds", json.dumps(SEEDS), "--bn_modes", "[train]"]


@pytest.fixture(scope="module")
def seeds_study(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("seeds")
    rows = correlate.run(args_for(tmp_path, extra=SEED_ARGS))
    return tmp_path, rows


def test_seed_means_are_correlated_and_match_the_stored_per_seed_values(seeds_study, study):
    tmp_path, _ = seeds_study
    records = {r["arch"]: r for r in raw_records(tmp_path)[1:]}
    single = {r["arch"]: r for r in raw_records(study[0])[1:]}
    table = csv_rows(tmp_path)
    checked = 0
    for epoch in ("0", "1"):
        for metric in ("lga", "condition_number", "frobenius_norm", "mean", "trace"):
            per_seed = {
                seed: [
                    records[a]["per_seed"][str(seed)]["epochs"][epoch]["ntk"]["n10-train"][metric]
                    for a in ARCHS
                ]
                for seed in SEEDS
            }
            means = [float(np.mean([per_seed[seed][i] for seed in SEEDS])) for i in range(6)]
            stored = [records[a]["epochs"][epoch]["ntk"]["n10-train"][metric] for a in ARCHS]
            assert stored == pytest.approx(means, rel=1e-12, nan_ok=True)
            # seed 42 is the single-seed study's run
            want = [single[a]["epochs"][epoch]["ntk"]["n10-train"][metric] for a in ARCHS]
            assert per_seed[42] == pytest.approx(want, rel=1e-6, nan_ok=True)
            keep = [i for i, v in enumerate(means) if not math.isnan(v)]
            row = table[(metric, "n10-train", int(epoch))]
            assert int(row["n"]) == len(keep)
            if len({means[i] for i in keep}) > 1:
                x, y = [means[i] for i in keep], [ACCURACY[i] for i in keep]
                tau = stats.kendalltau(x, y, variant="b").statistic
                assert float(row["kendall_tau"]) == pytest.approx(tau, abs=1e-12)
                checked += 1
        val_acc = [
            np.mean([records[a]["per_seed"][str(s)]["epochs"][epoch]["val_acc"] for s in SEEDS])
            for a in ARCHS
        ]
        assert [records[a]["epochs"][epoch]["val_acc"] for a in ARCHS] == pytest.approx(val_acc)
    assert checked >= 6


def test_each_seed_is_an_independent_initialisation(seeds_study):
    from lga_lightning.core.functional import lga
    from lga_lightning.data import DigitsDataModule

    record = raw_records(seeds_study[0])[1]
    x, y = DigitsDataModule(resize=8, channels=3, batch_size=64).probe_batch(10, seed=42)
    for seed in SEEDS:
        torch.manual_seed(seed)
        net = nb201.build(record["arch"], C=4, N=1, num_classes=10, in_channels=3)
        expected = lga(empirical_ntk(net, x, implementation="loop"), y)
        got = record["per_seed"][str(seed)]["epochs"]["0"]["ntk"]["n10-train"]["lga"]
        assert got == pytest.approx(expected, rel=1e-4)
    values = [record["per_seed"][str(s)]["epochs"]["0"]["ntk"]["n10-train"]["lga"] for s in SEEDS]
    assert values[0] != values[1]


def test_seed_study_resumes_and_refuses_other_seeds(seeds_study, tmp_path, capsys):
    source, _ = seeds_study
    out = tmp_path / "out"
    out.mkdir()
    lines = (source / "out" / "raw.jsonl").read_text().splitlines(keepends=True)
    (out / "raw.jsonl").write_text("".join(lines[:4]) + lines[4][:40])
    (tmp_path / "truth.csv").write_text((source / "truth.csv").read_text())
    correlate.run(args_for(tmp_path, extra=SEED_ARGS))
    log = capsys.readouterr().out
    assert log.count("[4/6]") == 1 and "[1/6]" not in log
    assert csv_rows(tmp_path) == csv_rows(source)
    for extra in (["--bn_modes", "[train]"], ["--model_seeds", "[7, 42]"]):
        with pytest.raises(SystemExit) as exit_info:
            correlate.run(args_for(tmp_path, extra=extra))
        assert exit_info.value.code == 2
        assert "model_seed" in capsys.readouterr().err


def test_a_resume_with_another_thread_count_is_refused(study, tmp_path, capsys):
    # the thread count changes float rounding: mixing two counts in one table would be silent
    source, _ = study
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "raw.jsonl").write_text((source / "out" / "raw.jsonl").read_text())
    (tmp_path / "truth.csv").write_text((source / "truth.csv").read_text())
    with pytest.raises(SystemExit) as exit_info:
        correlate.run(args_for(tmp_path, extra=["--num_threads", "2"]))
    assert exit_info.value.code == 2
    assert "num_threads" in capsys.readouterr().err


def test_num_threads_holds_for_the_study_only(tmp_path):
    before = torch.get_num_threads()
    correlate.run(args_for(tmp_path, archs=ARCHS[:2], extra=["--num_threads", str(before + 1)]))
    assert raw_records(tmp_path)[0]["fingerprint"]["num_threads"] == before + 1  # it was used
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sample": 0}, r"`sample` must be a positive number of archs, got 0"),
        ({"first": -1}, r"`first` must be a positive number"),
        ({"archs": []}, "empty list"),
        ({"first": 2, "measure_at": [0, 3]}, r"`own_epochs=3` is also in `measure_at`"),
    ],
)
def test_study_arguments_that_cannot_give_an_honest_table_are_refused(kwargs, match):
    args = {"own_epochs": 3, "probe_sizes": [8], "measure_at": [0], **kwargs}
    with pytest.raises(ValueError, match=match):
        correlate.CorrelationStudy(**args)


def embedded_accuracy(arch: str, column: str) -> float:
    import gzip
    from importlib import resources

    path = resources.files("lga_lightning.search.ground_truth") / "data" / "nb201_accuracies.csv.gz"
    with gzip.open(str(path), "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["arch"] == arch:
                return float(row[column])
    raise KeyError(arch)


def test_zero_cost_proxies_combinations_and_the_embedded_ground_truth(tmp_path, capsys):
    rows = correlate.run(
        [
            "--data", "lga_lightning.data.DigitsDataModule",
            "--data.resize", "8", "--data.channels", "3", "--data.batch_size", "64",
            "--space.C", "4", "--space.N", "1",
            "--archs", json.dumps(ARCHS),
            "--measure_at", "[0, 1]", "--probe_sizes", "[10]", "--bn_modes", "[train]",
            "--metrics", "[lga, condition_number]",
            "--proxies", "[synflow, naswot]", "--proxy_batch", "16",
            "--combine", '["lga@1+params", "synflow+naswot"]',
            "--limit_train_batches", "2", "--bootstrap", "200",
            "--output_dir", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "NAS-Bench-201 table (embedded)" in out
    assert "cost per architecture: " in out and "synflow" in out and "train" in out
    table = csv_rows(tmp_path)
    by_arch = {r["arch"]: r for r in raw_records(tmp_path)[1:]}
    truth = [embedded_accuracy(a, "cifar10_test_200ep") for a in ARCHS]
    # proxies: stored at every epoch, correlated like any signal
    for epoch in (0, 1):
        values = [by_arch[a]["epochs"][str(epoch)]["proxies"]["synflow"] for a in ARCHS]
        row = table[("synflow", "b16", epoch)]
        assert float(row["kendall_tau"]) == pytest.approx(stats.kendalltau(values, truth)[0])
    # the combined ranking: sum of log ranks, best = highest rank, recomputed here
    lga1 = np.array([by_arch[a]["epochs"]["1"]["ntk"]["n10-train"]["lga"] for a in ARCHS])
    params = np.array([by_arch[a]["params"] for a in ARCHS], dtype=float)
    n = len(ARCHS)
    combined = np.log(stats.rankdata(lga1) / n) + np.log(stats.rankdata(params) / n)
    row = table[("lga@1+params", "log_ranks", 1)]
    assert float(row["kendall_tau"]) == pytest.approx(stats.kendalltau(combined, truth)[0])
    assert int(row["expected_sign"]) == 1
    assert float(row["signed_tau_low"]) <= float(row["signed_tau"]) <= float(row["signed_tau_high"])
    # "what 12 epochs of full training would tell": the benchmark's own short schedule
    short = [embedded_accuracy(a, "cifar10_test_12ep") for a in ARCHS]
    row = table[("benchmark_12ep", "-", 1)]
    assert float(row["kendall_tau"]) == pytest.approx(stats.kendalltau(short, truth)[0])
    assert {r.quantity for r in rows} >= {"synflow", "naswot", "synflow+naswot"}


def test_undefined_values_of_a_signed_quantity_rank_worst():
    from recipes._rank import correlate as rank_correlate

    truth = [10.0, 20.0, 30.0, 40.0]
    # a dead cell (nan LGA) is the worst: same as giving it the lowest value
    n, tau, *_ = rank_correlate([math.nan, 1.0, 2.0, 3.0], truth, sign=+1)
    assert n == 4 and tau == pytest.approx(stats.kendalltau([-1, 1, 2, 3], truth)[0])
    # for a smaller-is-better quantity the worst is the largest
    n, tau, *_ = rank_correlate([math.nan, 3.0, 2.0, 1.0], truth, sign=-1)
    assert n == 4 and tau == pytest.approx(stats.kendalltau([9, 3, 2, 1], truth)[0])
    # without a direction, undefined values are left out
    n, *_ = rank_correlate([math.nan, 3.0, 2.0, 1.0], truth, sign=0)
    assert n == 3


def test_another_data_class_keeps_its_own_defaults():
    # the default digits module's batch size (128) must not leak into another class
    from lga_lightning.data import ArraysDataModule

    parser = correlate.build_parser()
    args = parser.parse_args(["--data", "lga_lightning.data.ArraysDataModule",
                              "--data.path", "x.npz", "--first", "2"])  # fmt: skip
    import inspect

    default = inspect.signature(ArraysDataModule).parameters["batch_size"].default
    assert args.data.init_args.batch_size == default != 128


def test_a_second_study_into_a_folder_in_use_is_refused(study, tmp_path, capsys):
    import os

    from lga_lightning.utils.lock import OutputLock

    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "truth.csv").write_text((study[0] / "truth.csv").read_text())
    holder = OutputLock(out)
    holder.acquire()  # a live holder: this very process
    try:
        with pytest.raises(SystemExit) as exit_info:
            correlate.run(args_for(tmp_path))
    finally:
        holder.release()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"in use by process {os.getpid()}" in err and "output_dir" in err
    assert not (out / "raw.jsonl").exists()  # nothing measured, nothing written


def test_a_study_of_another_protocol_sets_probe_init_validation_and_truth_column(tmp_path):
    from lga_lightning.core.functional import lga
    from lga_lightning.core.init import initialize
    from lga_lightning.data import DigitsDataModule

    dm = DigitsDataModule(resize=8, channels=3, batch_size=64)
    dm.setup("fit")
    x, y = dm.probe_batch(12, seed=3)  # an explicit probe, as another protocol would pick it
    np.savez(tmp_path / "probe.npz", x=x.numpy(), y=y.numpy())
    correlate.run(
        [
            "--data", "lga_lightning.data.DigitsDataModule",
            "--data.resize", "8", "--data.channels", "3", "--data.batch_size", "64",
            "--space.C", "4", "--space.N", "1",
            "--archs", json.dumps(ARCHS[:3]),
            "--measure_at", "[0]", "--probe_sizes", "[10]", "--bn_modes", "[train]",
            "--probe_file", str(tmp_path / "probe.npz"),
            "--init", "kaiming_normal", "--val_source", "test",
            "--truth_column", "cifar10_valid_12ep", "--bootstrap", "0",
            "--output_dir", str(tmp_path / "out"), "--plot", "false",
        ]
    )  # fmt: skip
    records = {r["arch"]: r for r in raw_records(tmp_path)[1:]}
    test_x = torch.stack([dm.test_set[i][0] for i in range(len(dm.test_set))])
    test_y = torch.tensor([int(dm.test_set[i][1]) for i in range(len(dm.test_set))])
    for arch in ARCHS[:3]:
        torch.manual_seed(42)
        net = initialize(
            nb201.build(arch, C=4, N=1, num_classes=10, in_channels=3), "kaiming_normal"
        )
        entry = records[arch]["epochs"]["0"]
        expected = lga(empirical_ntk(net, x[:10], implementation="loop"), y[:10])
        assert entry["ntk"]["n10-train"]["lga"] == pytest.approx(expected, rel=1e-4)
        with torch.no_grad():
            accuracy = float((net.eval()(test_x).argmax(1) == test_y).float().mean())
        assert entry["val_acc"] == pytest.approx(accuracy)
    truth = [embedded_accuracy(a, "cifar10_valid_12ep") for a in ARCHS[:3]]
    params = [records[a]["params"] for a in ARCHS[:3]]
    row = csv_rows(tmp_path)[("params", "-", 0)]
    assert float(row["kendall_tau"]) == pytest.approx(stats.kendalltau(params, truth)[0])


def test_a_study_logs_one_row_per_cell_to_a_lightning_logger(tmp_path):
    logger_args = ["--logger", "lightning.pytorch.loggers.CSVLogger"]
    logger_args += ["--logger.save_dir", str(tmp_path / "logs"), "--logger.name", "study"]
    correlate.run(args_for(tmp_path, archs=ARCHS[:2], extra=logger_args))
    stored = raw_records(tmp_path)[1:]
    with (tmp_path / "logs" / "study" / "version_0" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(row["step"]) for row in rows] == [0, 1]  # the cells, in the study's order
    for row, record in zip(rows, stored, strict=True):
        assert record["arch"] == ARCHS[int(row["step"])]
        for epoch in ("0", "1"):
            lga = record["epochs"][epoch]["ntk"]["n10-train"]["lga"]
            assert float(row[f"lga[n10-train]@{epoch}"]) == lga  # the number the store holds
        assert float(row["params"]) == record["params"]
    hparams = (tmp_path / "logs" / "study" / "version_0" / "hparams.yaml").read_text()
    assert "n10-train" in hparams and "model_seeds" in hparams  # the fingerprint


def test_precision_is_in_the_fingerprint_only_when_set(tmp_path):
    # a store written before the option (no key) still resumes under the default precision
    def study(**kwargs):
        return correlate.CorrelationStudy(
            space=nb201.NB201Space(C=4, N=1), first=2, output_dir=str(tmp_path), **kwargs
        )

    assert "precision" not in study().fingerprint()
    assert study(precision="64-true").fingerprint()["precision"] == "64-true"


def test_a_study_hands_each_architecture_after_raw_jsonl(tmp_path):
    mine = ListSink()
    study = correlate.CorrelationStudy(
        space=NB201Space(C=4, N=1),
        first=2,
        measure_at=[0],
        own_epochs=1,
        probe_sizes=[8],
        limit_train_batches=1,
        bootstrap=0,
        plot=False,
        output_dir=str(tmp_path / "study"),
        num_threads=1,
        sinks=[mine],
    )
    study.run()
    raw = [json.loads(line) for line in (tmp_path / "study" / "raw.jsonl").read_text().splitlines()]
    assert [r["arch"] for r in mine.records] == study.architectures()
    # after the fingerprint line; compared as JSON text, where nan equals nan
    assert json.dumps(mine.records, sort_keys=True) == json.dumps(raw[1:], sort_keys=True)
