"""``lga-linearize``: the non-linear advantage of a network over its linearisation.

For each architecture (NAS-Bench-201 arch strings, or any network given by ``class_path``), the
network is built with a fixed seed, linearised around that initialisation ``theta_0``
(:func:`lga_lightning.core.linearization.linearize`), and both are trained with the same recipe: the
same :class:`~lga_lightning.training.module.ClassificationModule`, optimizer, data, data order,
epochs and seed. Then both are evaluated on the test split and the recipe reports

- ``acc_nonlinear`` and ``acc_linear``: test accuracies (fractions in [0, 1]);
- ``advantage = acc_nonlinear - acc_linear``: the non-linear advantage (Ortiz-Jimenez et al.,
  NeurIPS 2021); about 0 for a network in the kernel regime, large when feature learning helps;
- ``normalized_advantage = advantage / (1 - 1/C)`` for ``C`` classes: the advantage relative to
  the largest gap possible between a perfect classifier and chance;
- ``kernel_distance`` and ``kernel_velocity``: how far the non-linear network's NTK moved from
  ``theta_0`` by the end of training, and in its last epoch (``NTKMetrics``; ``nan`` with
  ``probe_size: 0``). The linearisation's kernel is ``J(theta_0) J(theta_0)^T`` throughout.

Outputs in ``output_dir``:

- ``raw.jsonl``: one line per architecture, appended and ``fsync``-ed as each one finishes; a
  rerun with the same settings skips what is there (resume);
- ``advantage.csv``: the table, rewritten atomically; also printed;
- ``.lock``: present while a run uses the folder (a second run is refused);
- ``<arch>/nonlinear/``: CSV logs, ``ntk_metrics.csv`` and ``ntk_evolution.png`` (the kernel's
  evolution plot); ``<arch>/linear/``: CSV logs; ``<arch>/{nonlinear,linear}.pt``: trained
  weights (``save_weights``).

Example::

    lga-linearize --config configs/linearize_digits.yaml
    lga-linearize --config configs/linearize_digits.yaml --epochs 3 --C 8 --N 1
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from jsonargparse import ArgumentParser, lazy_instance
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from lga_lightning.core.linearization import linearize
from lga_lightning.data import DigitsDataModule
from lga_lightning.data.base import ImageDataModule
from lga_lightning.search.spaces import nb201
from lga_lightning.training.callback import NTKMetrics
from lga_lightning.training.module import ClassificationModule
from lga_lightning.utils.describe import describe as _describe
from lga_lightning.utils.files import append_jsonl, check_output_dir
from lga_lightning.utils.lock import OutputLock
from lga_lightning.utils.threads import torch_threads
from recipes._advantage_table import COLUMNS, advantage, format_row, format_table, to_csv
from recipes._cli import class_parser, run_class
from recipes._files import atomic_write_text, read_jsonl

DESCRIPTION = (
    "Train each network and its linearisation around the initialisation with the same recipe, "
    "and report both test accuracies, the non-linear advantage (their difference) and how far "
    "the network's NTK moved. Try first: lga-linearize --config configs/linearize_digits.yaml "
    "(two cells on the embedded digits, about a minute on a 2-core CPU). Outputs land in "
    "output_dir: advantage.csv (also printed), raw.jsonl (a rerun resumes) and each network's "
    "logs and kernel plots in <output_dir>/<arch>/."
)


__all__ = [
    "COLUMNS",
    "CSV_NAME",
    "RAW_NAME",
    "NonlinearAdvantage",
    "advantage",
    "build_parser",
    "format_table",
    "main",
    "run",
    "to_csv",
]

PROG = "lga-linearize"
RAW_NAME = "raw.jsonl"
CSV_NAME = "advantage.csv"
DEFAULT_DATA = lazy_instance(DigitsDataModule, resize=16, channels=3, batch_size=128)
DEFAULT_ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
    "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


class NonlinearAdvantage:
    """Train networks and their linearisations with one recipe; report the non-linear advantage.

    Args:
        data: the datamodule (train split for training, test split for the accuracies).
        archs: NAS-Bench-201 arch strings, built with ``C``/``N`` and the data's classes.
        models: networks by ``class_path`` (functions returning a fresh ``nn.Module`` whose
            output has ``num_classes`` logits), e.g. ``lga_lightning.core.models.SmallCNN``.
            Default when neither ``archs`` nor ``models`` is given: one NB201 cell.
        C: NB201 channels of the first stage.
        N: NB201 cells per stage.
        epochs: training epochs, for both networks.
        optimizer: optimizer (``class_path`` with ``init_args``); default the paper's SGD
            (lr 0.025, momentum 0.9, weight decay 3e-4).
        seed: seed of the initialisation, the data order and every random draw.
        mode: how the linearisation treats BatchNorm and dropout (see
            :func:`~lga_lightning.core.linearization.linearize`): ``eval`` (fixed at ``theta_0``'s
            running statistics, a model linear in its parameters) or ``train``.
        limit_train_batches: batches per epoch (an int) or fraction of them, for quick runs.
        probe_size: probe samples of the non-linear network's NTK (``NTKMetrics``, measured every
            epoch with kernel velocity); 0 switches the kernel measurement off.
        kernel_bn_mode: BatchNorm mode of the kernel: ``eval`` (running statistics, decoupled,
            cheap) or ``train`` (batch statistics, the paper's LGA kernel, O(n^2) work).
        accelerator: Lightning accelerator (``auto``, ``cpu``, ``gpu``...); one device.
        precision: the Trainer's precision for both networks (``32-true``, ``64-true``,
            ``bf16-mixed``...); the kernel is measured in at least ``float32``.
        output_dir: folder of every output.
        save_weights: save both trained networks' ``state_dict`` under ``<arch>/``.
        num_threads: CPU threads for torch; default: torch's choice.

    Raises:
        ValueError: on invalid settings, naming the fix.

    Example:
        >>> study = NonlinearAdvantage(archs=[DEFAULT_ARCH], epochs=1, C=8, N=1)
        >>> study.names()[0] == DEFAULT_ARCH
        True
    """

    def __init__(
        self,
        data: ImageDataModule = DEFAULT_DATA,
        archs: list[str] | None = None,
        models: list[Callable[[], nn.Module]] | None = None,
        C: int = 16,  # noqa: N803 - the benchmark's name
        N: int = 5,  # noqa: N803
        epochs: int = 5,
        optimizer: OptimizerCallable | None = None,
        seed: int = 42,
        mode: Literal["eval", "train"] = "eval",
        limit_train_batches: int | float | None = None,
        probe_size: int = 64,
        kernel_bn_mode: Literal["eval", "train"] = "eval",
        accelerator: str = "auto",
        precision: str = "32-true",
        output_dir: str = "results/linearize",
        save_weights: bool = True,
        num_threads: int | None = None,
    ) -> None:
        if archs is None and models is None:
            archs = [DEFAULT_ARCH]
        self.archs = [_valid_arch(i, a) for i, a in enumerate(archs or [])]
        self.models = list(models or [])
        if not self.archs and not self.models:
            raise ValueError("give at least one architecture: `archs` or `models`.")
        for name, value, low in (("epochs", epochs, 1), ("C", C, 1), ("N", N, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
        if probe_size != 0 and probe_size < 2:
            raise ValueError(f"`probe_size` must be 0 (off) or >= 2, got {probe_size}.")
        if mode not in ("eval", "train"):
            raise ValueError(f"`mode` can be 'eval' or 'train', got {mode!r}.")
        self.data = data
        self.C, self.N, self.epochs = C, N, epochs
        self.optimizer = optimizer
        self.seed, self.mode = seed, mode
        self.limit_train_batches = limit_train_batches
        self.probe_size, self.kernel_bn_mode = probe_size, kernel_bn_mode
        self.accelerator = accelerator
        self.precision = str(precision)
        check_output_dir(output_dir, "output_dir")
        self.output_dir = Path(output_dir)
        self.save_weights = save_weights
        self.num_threads = num_threads or None

    # -------------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """One label per architecture: the arch string, or ``<index>:<class name>``."""
        labels = list(self.archs)
        for i, factory in enumerate(self.models):
            target = getattr(factory, "args", [None])[-1] if hasattr(factory, "args") else None
            cls = target if isinstance(target, type) else factory
            labels.append(f"{i}:{getattr(cls, '__name__', type(cls).__name__)}")
        return labels

    def settings(self) -> dict[str, Any]:
        """What a stored result must share with this run to be reused on resume."""
        return {
            "epochs": self.epochs,
            "seed": self.seed,
            "mode": self.mode,
            "C": self.C,
            "N": self.N,
            "limit_train_batches": self.limit_train_batches,
            "data": repr(self.data),
            "optimizer": _describe(self.optimizer),
            "probe_size": self.probe_size,
            "kernel_bn_mode": self.kernel_bn_mode,
            # only when set, so that results stored before the option still resume
            **({"precision": self.precision} if self.precision != "32-true" else {}),
        }

    def run(self) -> list[dict[str, Any]]:
        """Train every architecture not yet in ``raw.jsonl``; print and write the table.

        One run at a time uses ``output_dir`` (:class:`~lga_lightning.utils.lock.OutputLock`).

        Returns:
            One record per architecture (the columns of :data:`COLUMNS` and more).

        Raises:
            OutputLockedError: when another run is using ``output_dir``.
        """
        with OutputLock(self.output_dir, option="`output_dir`"), torch_threads(self.num_threads):
            return self._run()

    def _run(self) -> list[dict[str, Any]]:
        raw = self.output_dir / RAW_NAME
        done = {r["name"]: r for r in read_jsonl(raw)} if raw.exists() else {}
        settings = self.settings()
        self.data.prepare_data()
        self.data.setup("fit")
        num_classes = int(self.data.num_classes)
        records = []
        builders = [(a, self._nb201(a, num_classes)) for a in self.archs]
        builders += list(zip(self.names()[len(self.archs) :], self.models, strict=True))
        for name, build in builders:
            if name in done:
                if done[name].get("settings") != settings:
                    raise ValueError(
                        f"{raw} holds a result for {name!r} with other settings "
                        f"({done[name].get('settings')} vs {settings}); choose another "
                        "`output_dir` or delete the file."
                    )
                print(f"{PROG}: {name}: done earlier, skipped", flush=True)
                records.append(done[name])
                continue
            record = self.measure(name, build, num_classes)
            record["settings"] = settings
            append_jsonl(raw, record)
            records.append(record)
        print(format_table(records), flush=True)
        atomic_write_text(self.output_dir / CSV_NAME, to_csv(records))
        print(f"wrote {self.output_dir / CSV_NAME}; raw values in {raw}", flush=True)
        return records

    def measure(
        self, name: str, build: Callable[[], nn.Module], num_classes: int
    ) -> dict[str, Any]:
        """Train one network and its linearisation; return accuracies and the advantage."""
        folder = self.output_dir / _slug(name)
        pl.seed_everything(self.seed, verbose=False)
        network = build()
        linear = linearize(network, mode=self.mode)  # a copy, around theta_0
        parameters = sum(p.numel() for p in network.parameters() if p.requires_grad)
        acc_n, sec_n, kernel = self._fit(network, folder, "nonlinear", num_classes, ntk=True)
        acc_l, sec_l, _ = self._fit(linear, folder, "linear", num_classes, ntk=False)
        gap, normalized = advantage(acc_n, acc_l, num_classes)
        record = {
            "name": name,
            "parameters": parameters,
            "acc_nonlinear": acc_n,
            "acc_linear": acc_l,
            "advantage": gap,
            "normalized_advantage": normalized,
            "num_classes": num_classes,
            "kernel_distance": kernel.get("kernel_distance", math.nan),
            "kernel_velocity": kernel.get("kernel_velocity", math.nan),
            "seconds_nonlinear": sec_n,
            "seconds_linear": sec_l,
            "folder": str(folder),
        }
        print(f"{PROG}: {name}: " + format_row(record), flush=True)
        return record

    # -------------------------------------------------------------------------------------------

    def _nb201(self, arch: str, num_classes: int) -> Callable[[], nn.Module]:
        return lambda: nb201.build(arch, C=self.C, N=self.N, num_classes=num_classes)

    def _fit(
        self, network: nn.Module, folder: Path, kind: str, num_classes: int, ntk: bool
    ) -> tuple[float, float, dict[str, float]]:
        pl.seed_everything(self.seed, verbose=False)  # same data order for both networks
        module = ClassificationModule(network, num_classes=num_classes, optimizer=self.optimizer)
        callback = None
        if ntk and self.probe_size:
            callback = NTKMetrics(
                every_n_epochs=1,
                probe_size=self.probe_size,
                probe_seed=self.seed,
                kernel_velocity=True,
                log_spectrum=False,
                kernel_kwargs={"bn_mode": self.kernel_bn_mode},
            )
        trainer = pl.Trainer(
            accelerator=self.accelerator,
            precision=self.precision,
            devices=1,
            max_epochs=self.epochs,
            limit_train_batches=self.limit_train_batches,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=CSVLogger(folder, name=kind, version=""),
            callbacks=[callback] if callback else [],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=folder,
        )
        start = time.perf_counter()
        trainer.fit(module, datamodule=self.data)
        seconds = time.perf_counter() - start
        (result,) = trainer.test(module, datamodule=self.data, verbose=False)
        if self.save_weights:
            torch.save(network.state_dict(), folder / f"{kind}.pt")
        last = callback.history[-1] if callback and callback.history else {}
        return float(result["test/acc"]), seconds, dict(last)


def _valid_arch(i: int, arch: str) -> str:
    """``arch`` if it is a valid NAS-Bench-201 arch string, else one line naming it and the fix.

    Example:
        >>> _valid_arch(0, "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        Traceback (most recent call last):
        ...
        ValueError: archs[0]: invalid NAS-Bench-201 arch string ...
    """
    try:
        return nb201.validate(arch)
    except ValueError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"archs[{i}]: {first}") from None


def _slug(name: str) -> str:
    """A folder name for an architecture: readable part plus a short hash.

    Example:
        >>> _slug("|nor_conv_3x3~0|+|skip_connect~0|none~1|")
        'nor_conv_3x3_0_skip_connect_0_none_1-e382a8f6'
    """
    readable = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[:48] or "arch"
    return f"{readable}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def build_parser() -> ArgumentParser:
    """The ``lga-linearize`` argument parser (every argument of :class:`NonlinearAdvantage`).

    Example:
        >>> build_parser().parse_args(["--epochs", "2", "--C", "8"]).epochs
        2
    """
    return class_parser(PROG, NonlinearAdvantage, DESCRIPTION)


def run(args: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run ``lga-linearize`` in-process: parse, train both networks per architecture, report.

    Returns:
        One record per architecture (also printed and written to ``output_dir``).
    """
    return run_class(PROG, build_parser(), NonlinearAdvantage, None if args is None else list(args))


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``lga-linearize`` console script."""
    run(args)


if __name__ == "__main__":
    main()
