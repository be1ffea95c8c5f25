"""Ground truth: NAS-Bench-201 files written in the official format, and plain tables.

The fixture `.pth` files are built with `nas_201_api`'s own result classes (`ResultsCount`,
`ArchResults`) and saved with `torch.save`, exactly as the official file is laid out:
{"meta_archs": [...], "arch2infos": {index: {"less": <hp=12 state>, "full": <hp=200 state>}},
"evaluated_indexes": [...]}.
"""

from __future__ import annotations

import csv
import fractions
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from nas_201_api import ArchResults, NASBench201API, ResultsCount

from lga_lightning.search.ground_truth import (
    ArchNotFoundError,
    GroundTruth,
    NASBench201,
    NATSBenchTopology,
    TableGroundTruth,
    export_table,
    resolve_split,
)

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
]
EVAL_SETS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
SEEDS = (777, 888)
EPOCHS = {"12": 3, "200": 4}  # short curves stand in for 12 / 200 epochs


def final_acc(arch: int, dataset: str, set_name: str, hp: str, seed: int) -> float:
    """The made-up final accuracy the fixture stores; distinct for every query."""
    d = list(EVAL_SETS).index(dataset)
    s = ["train", "x-valid", "x-test", "ori-test"].index(set_name)
    return (
        50.0
        + 10 * arch
        + 2.0 * d
        + 0.5 * s
        + (5.0 if hp == "200" else 0.0)
        + 0.1 * SEEDS.index(seed)
    )


def curve_acc(final: float, epoch: int, epochs: int) -> float:
    return final * (epoch + 1) / epochs


def _results(arch: int, arch_str: str, hp: str, datasets) -> dict:
    epochs = EPOCHS[hp]
    out = ArchResults(arch, arch_str)
    for dataset in datasets:
        for seed in SEEDS:
            train = [
                curve_acc(final_acc(arch, dataset, "train", hp, seed), e, epochs)
                for e in range(epochs)
            ]
            config = {"name": "infer.tiny", "C": 16, "N": 5, "arch_str": arch_str, "class_num": 10}
            rc = ResultsCount(
                dataset, None, train, [1.0] * epochs, 0.1, 10.0, config, seed, epochs, [0.01]
            )
            accs, losses, times = {}, {}, {}
            for set_name in EVAL_SETS[dataset]:
                final = final_acc(arch, dataset, set_name, hp, seed)
                for e in range(epochs):
                    accs[f"{set_name}@{e}"] = curve_acc(final, e, epochs)
                    losses[f"{set_name}@{e}"] = 1.0 / (e + 1)
                    times[f"{set_name}@{e}"] = 0.5
            rc.update_eval(accs, losses, times)
            out.update(dataset, seed, rc)
    return out.state_dict()


def write_fixture(path: Path, evaluated=(0, 2), extra: dict | None = None) -> Path:
    arch2infos = {}
    for i in evaluated:
        # arch 2 was trained only on cifar10-valid, like most archs of the v1_0 file at hp=12
        datasets = list(EVAL_SETS) if i == 0 else ["cifar10-valid"]
        arch2infos[i] = {
            "less": _results(i, ARCHS[i], "12", datasets),
            "full": _results(i, ARCHS[i], "200", datasets),
        }
    data = {
        "meta_archs": list(ARCHS),
        "arch2infos": arch2infos,
        "evaluated_indexes": list(evaluated),
        **(extra or {}),
    }
    torch.save(data, path)
    return path


@pytest.fixture(scope="module")
def bench_file(tmp_path_factory) -> Path:
    return write_fixture(tmp_path_factory.mktemp("nb201") / "NAS-Bench-201-v1_1-096897.pth")


@pytest.fixture(scope="module")
def bench(bench_file) -> NASBench201:
    return NASBench201(bench_file)


def mean_final(arch, dataset, set_name, hp):
    return float(np.mean([final_acc(arch, dataset, set_name, hp, s) for s in SEEDS]))


# ---------------------------------------------------------------- NAS-Bench-201 file
@pytest.mark.parametrize(
    ("dataset", "split", "official"),
    [
        ("cifar10", None, ("cifar10", "ori-test")),
        ("cifar10", "test", ("cifar10", "ori-test")),
        ("cifar10", "valid", ("cifar10-valid", "x-valid")),
        ("cifar10-valid", None, ("cifar10-valid", "x-valid")),
        ("cifar10-valid", "ori-test", ("cifar10-valid", "ori-test")),
        ("cifar100", None, ("cifar100", "x-test")),
        ("cifar100", "valid", ("cifar100", "x-valid")),
        ("cifar100", "ori-test", ("cifar100", "ori-test")),
        ("ImageNet16-120", None, ("ImageNet16-120", "x-test")),
        ("ImageNet16-120", "x-valid", ("ImageNet16-120", "x-valid")),
    ],
)
@pytest.mark.parametrize("hp", ["12", "200", 200])
def test_nb201_returns_the_stored_accuracy(bench, dataset, split, official, hp):
    expected = mean_final(0, *official, str(hp))
    assert bench.accuracy(ARCHS[0], dataset, split, hp) == pytest.approx(expected)


def test_nb201_seed_epoch_and_train_split(bench):
    assert bench.accuracy(ARCHS[0], "cifar100", seed=888) == pytest.approx(
        final_acc(0, "cifar100", "x-test", "200", 888)
    )
    first = np.mean([curve_acc(final_acc(0, "cifar10", "ori-test", "200", s), 0, 4) for s in SEEDS])
    assert bench.accuracy(ARCHS[0], "cifar10", epoch=0) == pytest.approx(first)
    assert bench.accuracy(ARCHS[0], "cifar10", "train") == pytest.approx(
        mean_final(0, "cifar10", "train", "200")
    )
    m = bench.metrics(ARCHS[0], "cifar10")
    assert m["loss"] == pytest.approx(1.0 / 4)


def test_nb201_agrees_with_the_official_api(bench, bench_file):
    official = NASBench201API(str(bench_file), verbose=False)
    for dataset, key in [
        ("cifar10", "test-accuracy"),
        ("cifar100", "test-accuracy"),
        ("cifar100", "valid-accuracy"),
        ("cifar10-valid", "valid-accuracy"),
    ]:
        info = official.get_more_info(0, dataset, hp="200", is_random=False)
        split = "valid" if key == "valid-accuracy" and dataset != "cifar10-valid" else None
        assert bench.accuracy(ARCHS[0], dataset, split) == pytest.approx(info[key])


def test_nb201_table_and_known_archs(bench):
    assert bench.known_archs() == [ARCHS[0], ARCHS[2]]
    assert len(bench) == 3
    table = bench.table("cifar10-valid", hp="12")
    assert table == pytest.approx(
        {ARCHS[i]: mean_final(i, "cifar10-valid", "x-valid", "12") for i in (0, 2)}
    )
    assert isinstance(bench, GroundTruth)


def test_nb201_is_lazy_and_accepts_a_folder(bench_file):
    gt = NASBench201(bench_file.parent)
    assert "not loaded" in repr(gt)
    assert gt.accuracy(ARCHS[2], "cifar10-valid") == pytest.approx(
        mean_final(2, "cifar10-valid", "x-valid", "200")
    )
    api = gt.api
    gt.accuracy(ARCHS[0])
    assert gt.api is api  # read once


def test_nb201_missing_archs_and_results(bench):
    with pytest.raises(ArchNotFoundError, match="not in the NAS-Bench-201 file"):
        bench.accuracy("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|bogus~2|")
    with pytest.raises(ArchNotFoundError, match="no stored results"):
        bench.accuracy(ARCHS[1])  # in the space, never evaluated
    with pytest.raises(ArchNotFoundError, match="available: \\['cifar10-valid'\\]"):
        bench.accuracy(ARCHS[2], "cifar100")
    with pytest.raises(ValueError, match="`dataset` can be one of"):
        bench.accuracy(ARCHS[0], "mnist")
    with pytest.raises(ValueError, match="has the splits"):
        bench.accuracy(ARCHS[0], "cifar10", "x-test")
    with pytest.raises(ValueError, match="`hp` can be one of"):
        bench.accuracy(ARCHS[0], hp="90")
    with pytest.raises(ValueError, match="can not find random seed|seed"):
        bench.accuracy(ARCHS[0], seed=1)


def test_nb201_missing_file_names_the_expected_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="NAS-Bench-201-v1_1-096897.pth") as info:
        NASBench201(tmp_path / "nope.pth").accuracy(ARCHS[0])
    assert "github.com/D-X-Y/NAS-Bench-201" in str(info.value)
    assert "NAS-Bench-201-v1_0-e61699.pth" in str(info.value)
    with pytest.raises(FileNotFoundError, match="in the folder"):
        NASBench201(tmp_path).load()


def test_nb201_corrupt_files(tmp_path, bench_file):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(bench_file.read_bytes()[:2000])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a benchmark file" * 10)
    wrong = tmp_path / "wrong.pth"
    torch.save({"meta_archs": ARCHS}, wrong)
    for path in (truncated, garbage, wrong):
        with pytest.raises(ValueError, match="cannot read .* as a NAS-Bench-201 benchmark file"):
            NASBench201(path).load()


def test_nb201_refuses_arbitrary_objects_unless_trusted(tmp_path):
    path = write_fixture(tmp_path / "objs.pth", extra={"note": fractions.Fraction(1, 3)})
    with pytest.raises(ValueError, match="trust_file=True"):
        NASBench201(path).load()
    assert NASBench201(path, trust_file=True).accuracy(ARCHS[0]) == pytest.approx(
        mean_final(0, "cifar10", "ori-test", "200")
    )


def test_nats_needs_the_optional_package(tmp_path):
    try:
        import nats_bench  # noqa: F401
    except ImportError:
        gt = NATSBenchTopology(tmp_path / "NATS-tss-v1_0-3ffb9-simple")  # constructing is free
        with pytest.raises(ImportError, match="pip install nats_bench"):
            gt.accuracy(ARCHS[0])
    else:
        with pytest.raises(FileNotFoundError, match="NATS-tss-v1_0-3ffb9-simple"):
            NATSBenchTopology(tmp_path / "missing").accuracy(ARCHS[0])


# ---------------------------------------------------------------- tables
def test_resolve_split_follows_the_official_remap():
    from nas_201_api.api_utils import remap_dataset_set_names

    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        for split in ("valid", "test"):
            assert resolve_split(dataset, split) == remap_dataset_set_names(dataset, split)


def test_table_from_csv_with_extra_columns(tmp_path):
    path = tmp_path / "gt.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["arch_str", "cifar10", "cifar100/x-test/200", "cifar100/x-test/12", "params", "note"]
        )
        w.writerow([ARCHS[0], "94.37", "73.51", "50.25", "1.53", "best"])
        w.writerow([ARCHS[2], "90.1", "", "40.0", "0.8", ""])
    table = TableGroundTruth(path)
    assert table.known_archs() == [ARCHS[0], ARCHS[2]]
    assert table.accuracy(ARCHS[0]) == 94.37
    assert table.accuracy(ARCHS[0], "cifar100") == 73.51  # default split, hp=200
    assert table.accuracy(ARCHS[0], "cifar100", "test", hp=12) == 50.25
    assert table.row(ARCHS[0])["params"] == 1.53 and table.row(ARCHS[0])["note"] == "best"
    assert table.table("cifar100") == {ARCHS[0]: 73.51}  # empty cells are skipped
    with pytest.raises(ArchNotFoundError, match="no numeric value"):
        table.accuracy(ARCHS[2], "cifar100")
    with pytest.raises(ArchNotFoundError, match="not in the table"):
        table.accuracy(ARCHS[1])
    with pytest.raises(LookupError, match="no accuracy column for dataset='ImageNet16-120'"):
        table.accuracy(ARCHS[0], "ImageNet16-120")
    assert isinstance(table, GroundTruth)


def test_table_from_json_both_layouts(tmp_path):
    rows = [{"arch": ARCHS[0], "cifar10": 93.0, "flops": 80}, {"arch": ARCHS[1], "cifar10": 10.0}]
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps(rows))
    as_dict = tmp_path / "dict.json"
    as_dict.write_text(
        json.dumps({r["arch"]: {k: v for k, v in r.items() if k != "arch"} for r in rows})
    )
    for path in (as_list, as_dict):
        table = TableGroundTruth(path)
        assert table.table() == {ARCHS[0]: 93.0, ARCHS[1]: 10.0}
        assert table.row(ARCHS[0])["flops"] == 80


def test_table_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ground-truth table not found"):
        TableGroundTruth(tmp_path / "none.csv")
    dup = tmp_path / "dup.csv"
    dup.write_text(f"arch,cifar10\n{ARCHS[0]},1\n{ARCHS[0]},2\n")
    with pytest.raises(ValueError, match="appears twice"):
        TableGroundTruth(dup)
    noarch = tmp_path / "noarch.csv"
    noarch.write_text("name,cifar10\nx,1\n")
    with pytest.raises(ValueError, match="no architecture column"):
        TableGroundTruth(noarch)
    assert TableGroundTruth(noarch, arch_column="name").accuracy("x") == 1.0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot parse the ground-truth table"):
        TableGroundTruth(bad)


def test_export_table_round_trips_nb201(bench, tmp_path):
    queries = [("cifar10-valid", None, "200"), ("cifar10-valid", "test", "12")]
    for name in ("gt.csv", "gt.json"):
        out = export_table(bench, tmp_path / name, queries=queries)
        table = TableGroundTruth(out)
        for arch in bench.known_archs():
            for dataset, split, hp in queries:
                assert table.accuracy(arch, dataset, split, hp) == pytest.approx(
                    bench.accuracy(arch, dataset, split, hp)
                )


def test_export_table_writes_nothing_on_error(bench, tmp_path):
    with pytest.raises(ArchNotFoundError):
        export_table(bench, tmp_path / "out.csv", archs=[ARCHS[0], ARCHS[1]])
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# the NAS-Bench-201 table shipped in the package
# --------------------------------------------------------------------------------------------

from lga_lightning.search.ground_truth import NB201_COLUMNS, nb201_table, nb201_table_path  # noqa: E402
from lga_lightning.search.spaces import nb201  # noqa: E402

RAW_COLUMNS = [
    "index",
    "arch",
    "cifar10_test_200ep",
    "cifar100_test_200ep",
    "imagenet16_test_200ep",
    "cifar10_test_12ep",
    "cifar10_valid_12ep",
    "cifar100_test_12ep",
    "cifar100_valid_12ep",
    "imagenet16_test_12ep",
    "imagenet16_valid_12ep",
]


def raw_rows() -> tuple[list[str], list[dict[str, str]]]:
    import gzip

    with gzip.open(nb201_table_path(), "rt", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_embedded_table_has_every_cell_and_column():
    header, rows = raw_rows()
    assert header == RAW_COLUMNS
    assert len(rows) == 15625 == nb201.SIZE
    gt = nb201_table()
    assert len(gt) == 15625
    assert set(gt.columns) == {"index", *NB201_COLUMNS.values()}
    assert set(NB201_COLUMNS) == set(RAW_COLUMNS[2:])
    assert nb201_table() is gt  # read once
    assert isinstance(gt, GroundTruth)
    licence = (nb201_table_path().parent / "LICENSE-NB201.txt").read_text()
    assert licence.count("MIT License") == 2 and "Xuanyi Dong" in licence


def test_embedded_table_index_and_arch_agree_with_the_space():
    # The benchmark's index order is its own (not the space's base-5 enumeration): the rows are
    # numbered 0..15624 in file order, every arch string round-trips through the space's
    # index/from_index, and together they cover each of the space's 15,625 cells exactly once.
    _, rows = raw_rows()
    assert [int(row["index"]) for row in rows] == list(range(15625))
    space_indices = []
    for row in rows:
        k = nb201.index(row["arch"])
        assert nb201.from_index(k) == row["arch"]
        space_indices.append(k)
    assert sorted(space_indices) == list(range(nb201.SIZE))
    gt = nb201_table()
    assert gt.known_archs() == [row["arch"] for row in rows]
    assert all(gt.row(row["arch"])["index"] == int(row["index"]) for row in rows[::997])


def test_embedded_table_accuracies_match_the_raw_file():
    _, rows = raw_rows()
    gt = nb201_table()
    # literal values of benchmark index 1 as they appear in the file
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"  # noqa: E501
    assert rows[1]["arch"] == arch
    assert gt.accuracy(arch) == 93.66
    assert gt.accuracy(arch, "cifar10", "test", "200") == 93.66
    assert gt.accuracy(arch, "cifar100") == 70.2933
    assert gt.accuracy(arch, "ImageNet16-120", hp=200) == 44.0333
    assert gt.accuracy(arch, hp="12") == 88.22
    assert gt.accuracy(arch, "cifar10", "valid", "12") == 82.834
    assert gt.accuracy(arch, "cifar10-valid", hp="12") == 82.834
    assert gt.accuracy(arch, "cifar100", "valid", "12") == 57.8
    assert gt.accuracy(arch, "ImageNet16-120", "x-valid", "12") == 35.4333
    queries = {
        "cifar10_test_200ep": ("cifar10", None, "200"),
        "cifar100_test_200ep": ("cifar100", "test", "200"),
        "imagenet16_test_200ep": ("ImageNet16-120", None, "200"),
        "cifar10_test_12ep": ("cifar10", "test", "12"),
        "cifar10_valid_12ep": ("cifar10", "valid", "12"),
        "cifar100_test_12ep": ("cifar100", None, "12"),
        "cifar100_valid_12ep": ("cifar100", "valid", "12"),
        "imagenet16_test_12ep": ("ImageNet16-120", "test", "12"),
        "imagenet16_valid_12ep": ("ImageNet16-120", "valid", "12"),
    }
    for row in (rows[0], rows[4321], rows[10000], rows[15624]):
        for column, (dataset, split, hp) in queries.items():
            assert gt.accuracy(row["arch"], dataset, split, hp) == float(row[column])


def test_embedded_table_rejects_unknown_queries_clearly():
    gt = nb201_table()
    arch = gt.known_archs()[0]
    with pytest.raises(LookupError, match="dataset='mnist'"):
        gt.accuracy(arch, "mnist")
    with pytest.raises(LookupError, match="hp='100'"):
        gt.accuracy(arch, "cifar10", hp="100")
    with pytest.raises(LookupError, match="split='valid'"):
        gt.accuracy(arch, "cifar100", "valid", "200")  # no 200-epoch validation column
    with pytest.raises(ArchNotFoundError):
        gt.accuracy("|none~0|+|none~0|none~1|+|none~0|none~1|bogus~2|")


def test_the_space_maps_nas_bench_201_indices_like_the_shipped_table():
    import gzip
    from importlib import resources

    from lga_lightning.search.spaces import NB201Space

    space = NB201Space()
    path = resources.files("lga_lightning.search.ground_truth") / "data" / "nb201_accuracies.csv.gz"
    with gzip.open(str(path), "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15625
    for row in rows:  # every cell, both directions
        assert space.benchmark_index(row["arch"]) == int(row["index"])
        assert space.from_benchmark_index(int(row["index"])) == row["arch"]
