"""``lga-linearize``: the reported advantage against independently computed accuracies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lga_lightning.core.linearization import linearize
from lga_lightning.data import DigitsDataModule
from lga_lightning.search.spaces import nb201
from recipes import linearize as recipe

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
ROOT = Path(__file__).resolve().parents[2]


def linear_in_parameters() -> nn.Module:
    """Logits ``W x + b``: linear in (W, b), so it equals its linearisation everywhere."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))


def data() -> DigitsDataModule:
    return DigitsDataModule(resize=16, channels=3, batch_size=128)


@torch.no_grad()
def test_accuracy(model: nn.Module, dm: DigitsDataModule) -> float:
    """Fraction of the test split classified correctly, counted by hand."""
    model.eval()
    correct = total = 0
    for x, y in dm.test_dataloader():
        correct += int((model(x).argmax(dim=1) == y).sum())
        total += len(y)
    return correct / total


test_accuracy.__test__ = False  # a helper, not a test


def test_a_model_linear_in_its_parameters_has_no_advantage(tmp_path: Path) -> None:
    study = recipe.NonlinearAdvantage(
        data=data(),
        models=[linear_in_parameters],
        epochs=2,
        limit_train_batches=4,
        probe_size=0,
        accelerator="cpu",
        output_dir=str(tmp_path),
    )
    (record,) = study.run()
    assert abs(record["advantage"]) < 1e-6
    assert record["acc_nonlinear"] == record["acc_linear"] > 0.2  # trained, not chance
    # identical training: the linearisation's parameters follow the network's
    folder = Path(record["folder"])
    net = torch.load(folder / "nonlinear.pt", weights_only=True)
    lin = torch.load(folder / "linear.pt", weights_only=True)
    for name in ("1.weight", "1.bias"):
        torch.testing.assert_close(lin[name], net[name], rtol=1e-5, atol=1e-6)
        assert not torch.equal(lin[f"_theta0.{name}"], lin[name])  # it did move


def test_num_threads_holds_for_the_run_only(tmp_path: Path) -> None:
    # a library call that left torch's count changed would change the caller's next sums
    before = torch.get_num_threads()
    study = recipe.NonlinearAdvantage(
        data=data(),
        models=[linear_in_parameters],
        epochs=1,
        limit_train_batches=2,
        probe_size=0,
        accelerator="cpu",
        output_dir=str(tmp_path),
        num_threads=before + 1,
    )
    assert torch.get_num_threads() == before  # building the study changes nothing
    study.run()
    assert torch.get_num_threads() == before


def test_reported_advantage_is_the_difference_of_the_reported_accuracies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--archs", f'["{ARCH}"]', "--C", "4", "--N", "1", "--epochs", "1"]
    args += ["--limit_train_batches", "3", "--probe_size", "8", "--accelerator", "cpu"]
    args += ["--output_dir", str(tmp_path)]
    (record,) = recipe.run(args)
    out = capsys.readouterr().out

    # accuracies recomputed from the saved weights, by hand, on the test split
    dm = data()
    dm.prepare_data()
    dm.setup("test")
    folder = Path(record["folder"])
    network = nb201.build(ARCH, C=4, N=1, num_classes=10)
    network.load_state_dict(torch.load(folder / "nonlinear.pt", weights_only=True))
    linear = linearize(nb201.build(ARCH, C=4, N=1, num_classes=10))
    linear.load_state_dict(torch.load(folder / "linear.pt", weights_only=True))
    acc_n, acc_l = test_accuracy(network, dm), test_accuracy(linear, dm)
    assert record["acc_nonlinear"] == pytest.approx(acc_n, abs=1e-6)
    assert record["acc_linear"] == pytest.approx(acc_l, abs=1e-6)
    assert record["advantage"] == pytest.approx(acc_n - acc_l, abs=1e-6)
    assert record["normalized_advantage"] == pytest.approx((acc_n - acc_l) / 0.9, abs=1e-6)
    assert 0 <= record["kernel_distance"] <= 1

    # the printed table, the CSV and the raw line say the same
    assert f"{record['advantage']:+9.4f}" in out and ARCH in out
    with open(tmp_path / "advantage.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["advantage"]) == record["advantage"] and row["name"] == ARCH
    (line,) = (tmp_path / "raw.jsonl").read_text().splitlines()
    assert json.loads(line)["acc_linear"] == record["acc_linear"]
    assert (folder / "nonlinear" / "ntk_evolution.png").read_bytes()[1:4] == b"PNG"

    # a rerun resumes: nothing is trained again
    (again,) = recipe.run(args)
    assert "done earlier, skipped" in capsys.readouterr().out
    assert again == json.loads(line)
    # other settings in the same folder: a one-line error naming the fix
    with pytest.raises(SystemExit) as exit_info:
        recipe.run([*args, "--epochs", "2"])
    assert exit_info.value.code == 2
    assert "choose another `output_dir`" in capsys.readouterr().err
    # ... also when what changed is the images, the optimizer or the probe
    for other in (
        ["--data.resize", "8"],
        ["--optimizer", "torch.optim.SGD", "--optimizer.lr", "0.5"],
        ["--probe_size", "16"],
    ):
        with pytest.raises(SystemExit):
            recipe.run([*args, *other])
        assert "choose another `output_dir`" in capsys.readouterr().err, other


def test_help_and_print_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_info:
        recipe.run(["--help"])
    assert exit_info.value.code == 0
    assert "--probe_size" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        recipe.run(["--config", "configs/linearize_digits.yaml", "--print_config"])
    assert "linearize_digits" in capsys.readouterr().out


def test_bad_settings_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in (
        (["--epochs", "0"], "`epochs` must be an integer >= 1"),
        (["--archs", '["|bogus~0|"]'], "bogus"),
        (["--probe_size", "1"], "`probe_size` must be 0 (off) or >= 2"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            recipe.run(args)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_precision_is_in_the_settings_only_when_set(tmp_path: Path) -> None:
    # results stored before the option (no key) still resume under the default precision
    def study(**kwargs):
        data = DigitsDataModule(resize=8, channels=3)
        return recipe.NonlinearAdvantage(data, epochs=1, output_dir=str(tmp_path), **kwargs)

    assert "precision" not in study().settings()
    assert study(precision="64-true").settings()["precision"] == "64-true"
