"""``lga-correlate``: how well do NTK metrics rank architectures? The paper's study, one command.

For every architecture of a set (a seeded sample of a space, its first ``k``, or a list), the
network is built with a fixed seed and trained with the paper's recipe under ``NTKMetrics``: at
each chosen epoch (``0`` = initialisation, ``e`` = after ``e`` epochs) the NTK metrics of a fixed
probe batch are recorded next to the run's baselines (parameter count, FLOPs, the epoch's
training loss and validation accuracy). Each quantity at each
epoch is then rank-correlated (Kendall tau-b, Spearman rho) with ground-truth accuracy, from a
benchmark (NAS-Bench-201 file or a CSV/JSON table) or from the run's own longer training.

Protocol (``docs/definitions.md``, the paper's official code): default PyTorch initialisation with
model seed 42 (``model_seeds: [42]``); probe of 256 class-balanced training images (data seed
42), or 256 class-balanced test images (``probe_split: test``, the paper's after-training
"first test batch" of a shuffled test set), or both (``probe_split: [train, test]``);
1 epoch of SGD (lr 0.025 constant, momentum 0.9, weight decay 3e-4), cross-entropy, batch size
and augmentation from the datamodule (the configs use 1024 and random crop + flip, as the
paper).

Outputs in ``output_dir``:

- ``raw.jsonl``: one line per architecture with every measured value, appended and ``fsync``-ed
  as each architecture finishes; a rerun skips what is there (resume), and ``--analyse_only``
  recomputes the correlations without measuring anything;
- ``correlations.csv``: one row per quantity, setting and epoch (see :mod:`recipes._rank`);
- ``correlations.png``: Kendall tau against the epoch per quantity;
- the table, printed.

One initialisation gives noisy metrics (Kendall 0.42-0.51 between two seeds on 100 NAS-Bench-201
cells); with several ``model_seeds`` every architecture is built, trained and measured once per
seed, and every value (NTK metrics, training loss, validation accuracy) is averaged over the seeds
before correlating. ``raw.jsonl`` then keeps the means under ``epochs`` and each seed's own values
under ``per_seed``; the cost is one full measurement per seed.

``setting`` names the kernel variant: ``n<probe size>-<bn mode>``, e.g. ``n256-train`` (the
paper's coupled, train-mode BatchNorm kernel) or ``n64-eval`` (decoupled, BN running statistics,
several times cheaper); sweep them with ``probe_sizes`` and ``bn_modes``.

Example::

    lga-correlate --config configs/correlate_init_cifar10.yaml --sample 20 --probe_sizes [64]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ArgumentParser, lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.loggers import Logger

from lga_lightning._compat import renamed_keywords
from lga_lightning.core.functional import SCALAR_METRICS
from lga_lightning.core.kernel import DEFAULT_CHUNK_SIZE, ParamSelection
from lga_lightning.core.meter import check_proxies
from lga_lightning.data import DigitsDataModule
from lga_lightning.data.base import ImageDataModule
from lga_lightning.search.spaces import NB201Space, SearchSpace
from lga_lightning.training.sinks import Sink, check_sinks
from lga_lightning.utils.describe import describe
from lga_lightning.utils.files import check_output_dir
from lga_lightning.utils.lock import OutputLock
from lga_lightning.utils.threads import Threads
from recipes._analysis import PROG, RAW_NAME, StudyAnalysis
from recipes._archs import study_architectures
from recipes._cli import class_parser, run_class
from recipes._combine import parse_combination
from recipes._probes import setting_name
from recipes._rank import Correlation
from recipes._store import ANALYSE_ANYWAY, SETTING_DEFAULTS, resume, stored_records
from recipes._study import StudyMeasurement, study_threads
from recipes._study_args import check_study_arguments

__all__ = [
    "ANALYSE_ANYWAY",
    "EVAL_ORDER",
    "SETTING_DEFAULTS",
    "CorrelationStudy",
    "build_parser",
    "main",
    "run",
    "study_threads",
]

DESCRIPTION = (
    "Measure NTK metrics of many architectures, each trained with a fixed recipe, and "
    "rank-correlate every metric at every epoch with the architectures' accuracy (Kendall tau, "
    "Spearman rho), next to baselines (parameters, FLOPs, training loss, validation accuracy): "
    "the paper's study in one command. Try first: lga-correlate --config "
    "configs/correlate_digits.yaml (16 cells on the embedded digits, about 2.5 min on a 2-core "
    "CPU). Outputs land in output_dir: raw.jsonl (one line per architecture; a rerun resumes), "
    "correlations.csv and correlations.png; the table is printed."
)


DEFAULT_SPACE = lazy_instance(NB201Space, C=16, N=5)


EVAL_ORDER = "seeded"
"""How validation and test batches are ordered: ``seeded``, a fixed seeded permutation of the
split (:func:`lga_lightning.data.base.eval_order`); studies stored before it ran in ``file``
order, which on class-sorted data gives one-class batches (their ``val_acc`` is suspect)."""


class CorrelationStudy(StudyMeasurement, StudyAnalysis):
    """Measure NTK metrics of many architectures and correlate them with accuracy.

    Args:
        data: the datamodule the networks train on and the probe comes from; default
            scikit-learn's digits resized to 16x16 with 3 channels, batches of 128 (built here,
            not as a parser default, so that another ``--data`` class keeps its own defaults).
        space: the search space that builds the networks.
        archs: an explicit list of architectures (arch strings).
        sample: a seeded random sample of this many distinct architectures of ``space``.
        first: the first ``first`` architectures of ``space`` in its enumeration order.
        arch_seed: seed of ``sample``.
        measure_at: epochs at which to measure (0 = initialisation, e = after e training epochs;
            0.2 called it ``epochs``).
        metrics: NTK metrics to measure (``lga``, ``condition_number``, ``frobenius_norm``,
            ``mean``, ``trace``; ``kernel_distance``, ``kernel_correlation``,
            ``relative_kernel_difference`` compare with the epoch-0 kernel).
        probe_sizes: probe batch sizes to measure with (the paper: 256).
        bn_modes: BatchNorm mode of the kernel: ``train`` (batch statistics, couples the
            samples, the paper's) and/or ``eval`` (running statistics, decoupled, cheaper).
        probe_split: where the probe comes from: ``train`` (class-balanced training images, the
            paper at initialisation), ``test`` (class-balanced test images, a seeded draw: the
            paper's "first test batch" of a shuffled test set, after training), or both as a
            list (``[train, test]``): a sweep, every network measured on both probes with the
            same weights. Test-probe settings are named ``n<size>-<bn mode>-test``.
        model_seeds: seeds of every network's initialisation; with several, each architecture
            is trained and measured once per seed and every value averaged over the seeds (also
            the validation accuracy used as ground truth with ``own_epochs``).
        data_seed: seed of the probe draw, the data order and the augmentation.
        optimizer: ``params -> Optimizer`` (in YAML a ``class_path`` such as ``torch.optim.SGD``
            with ``init_args``); default the paper's SGD (lr 0.025 constant, momentum 0.9,
            weight decay 3e-4).
        lr_scheduler: ``optimizer -> scheduler`` (``class_path``), stepped once per epoch;
            default none (constant learning rate, as in the paper).
        param_selection: the parameters the kernel differentiates: ``paper`` (every weight
            except the classifier's), ``weights`` (the classifier's too, as TE-NAS) or ``all``.
        limit_train_batches: train on at most this many batches per epoch (quick runs).
        benchmark: NAS-Bench-201 ``.pth`` file (or its folder) giving the ground truth. Without
            ``benchmark``, ``table`` and ``own_epochs``, an NB201 space's ground truth is the
            NAS-Bench-201 table shipped with the package (all 15,625 cells; 200-epoch test
            accuracy, and the 12-epoch schedule with ``hp: "12"``).
        trust_benchmark_file: unpickle the benchmark file fully (only for the official file).
        table: CSV/JSON ground-truth table (``lga_lightning.search.ground_truth.TableGroundTruth``).
        dataset: the ground truth's dataset: ``cifar10``, ``cifar100``, ``ImageNet16-120``,
            ``cifar10-valid``.
        split: benchmark split (``None``: the test accuracy the literature reports).
        hp: benchmark training budget, ``"200"`` or ``"12"`` epochs.
        own_epochs: without ``benchmark``/``table``: train every network this many epochs and
            use its final validation accuracy as the ground truth.
        output_dir: folder of ``raw.jsonl``, ``correlations.csv`` and ``correlations.png``.
        accelerator: the Lightning accelerator the networks train and are measured on
            (``auto``, ``cpu``, ``gpu``...).
        precision: the Trainer's precision (``32-true``, ``64-true``, ``bf16-mixed``...); the
            kernel is measured in at least ``float32`` (``float64`` under ``64-true``).
        implementation: kernel implementation (``auto``, ``loop``, ``coupled``, ``per_sample``).
        chunk_size: samples per batched per-sample-gradient computation (bounds memory).
        analyse_only: measure nothing; correlate what ``raw.jsonl`` holds.
        plot: write ``correlations.png``.
        num_threads: torch's intra-op CPU threads: ``auto`` (default: on a CPU, one thread
            below 4 cores, else all of them; :mod:`lga_lightning.utils.threads`), a number, or
            ``None`` for torch's choice. The count is printed first and is part of the resume
            fingerprint: the thread count changes float rounding, hence the numbers.
        proxies: zero-cost proxies measured at every epoch of ``measure_at`` on a class-balanced
            batch of ``proxy_batch`` training images (:data:`lga_lightning.core.proxies.PROXIES`).
        proxy_batch: the proxies' batch size.
        combine: combined rankings reported as rows of their own, e.g. ``["lga@1+params",
            "synflow+naswot"]`` (signals joined by ``+``, each at an epoch ``@e``, default the
            last measured epoch).
        combine_by: ``log_ranks`` (sum of log ranks, as AZ-NAS) or ``ranks`` (sum of ranks).
        reference_hp: also correlate the benchmark's accuracy after this many epochs of full
            training (``"12"``: NAS-Bench-201's short schedule) as the row
            ``benchmark_<hp>ep``, "what that much training would tell you"; ``null`` for none.
        bootstrap: resamples of the 95% interval of each row's ``signed_tau`` (over
            architectures; 0 for none).
        init: the networks' initialisation: ``pytorch`` (the layers' defaults, the paper's) or
            ``kaiming_normal`` (fan-in, zero biases); the magnitude metrics depend on it.
        probe_indices: an explicit probe: indices into the training split (its first
            ``probe_size`` items for each probe size) instead of the seeded class-balanced draw.
        probe_file: an explicit probe: an ``.npz`` with arrays ``x`` (images as the model takes
            them) and ``y`` (labels), its first ``probe_size`` rows for each probe size.
        val_source: where ``val_acc`` comes from: ``split`` (the datamodule's held-out part of
            the training data) or ``test`` (its test arrays).
        pairs: paired comparisons reported with ``bootstrap`` (``paired.csv``), e.g.
            ``["lga@1 - lga@0", "lga[n64-train-test]@1 - params"]``; default: every row after
            training vs the same row at initialisation, and every row vs ``params``
            (:mod:`recipes._paired`).
        truth_column: read the ground truth from this column of ``table`` (or of the embedded
            table, e.g. ``cifar10_valid_12ep`` is ``cifar10-valid/x-valid/12``) instead of the
            column ``dataset``/``split``/``hp`` name.
        logger: a Lightning logger (``WandbLogger``, ``CSVLogger``, ...) that gets the
            fingerprint and one row per architecture as it is measured (``raw.jsonl`` stays the
            resumable store; :mod:`recipes._study_logging`).
        sinks: more outputs of every architecture's record, after ``raw.jsonl`` (objects with
            ``write(record)``, by ``class_path``; :mod:`lga_lightning.training.sinks`).

    Example:
        >>> study = CorrelationStudy(first=2, measure_at=[0], own_epochs=1, probe_sizes=[8])
        >>> study.settings
        ['n8-train']
    """

    @renamed_keywords("params", "epochs")
    def __init__(
        self,
        data: ImageDataModule | None = None,
        space: SearchSpace = DEFAULT_SPACE,
        archs: list[str] | None = None,
        sample: int | None = None,
        first: int | None = None,
        arch_seed: int = 0,
        measure_at: list[int] = [0, 1],  # noqa: B006 - jsonargparse shows the default
        metrics: list[str] = list(SCALAR_METRICS),  # noqa: B006, B008
        probe_sizes: list[int] = [256],  # noqa: B006
        bn_modes: list[Literal["train", "eval"]] = ["train"],  # noqa: B006
        probe_split: Literal["train", "test"] | list[Literal["train", "test"]] = "train",
        model_seeds: list[int] = [42],  # noqa: B006
        data_seed: int = 42,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        param_selection: Literal["paper", "weights", "all"] = "paper",
        limit_train_batches: int | None = None,
        benchmark: str | None = None,
        trust_benchmark_file: bool = False,
        table: str | None = None,
        dataset: str = "cifar10",
        split: str | None = None,
        hp: str = "200",
        own_epochs: int | None = None,
        output_dir: str = "results/correlate",
        accelerator: str = "auto",
        precision: str = "32-true",
        implementation: Literal["auto", "loop", "coupled", "per_sample"] = "auto",
        chunk_size: int | None = DEFAULT_CHUNK_SIZE,
        analyse_only: bool = False,
        plot: bool = True,
        num_threads: Threads = "auto",
        proxies: list[str] = [],  # noqa: B006
        proxy_batch: int = 64,
        combine: list[str] = [],  # noqa: B006
        combine_by: Literal["log_ranks", "ranks"] = "log_ranks",
        reference_hp: str | None = "12",
        bootstrap: int = 1000,
        init: Literal["pytorch", "kaiming_normal"] = "pytorch",
        probe_indices: list[int] | None = None,
        probe_file: str | None = None,
        val_source: Literal["split", "test"] = "split",
        truth_column: str | None = None,
        pairs: list[str] | None = None,
        logger: Logger | None = None,
        sinks: list[Sink] = [],  # noqa: B006
    ) -> None:
        check_study_arguments(**locals())  # every argument by name, before anything is kept
        self.proxies = list(check_proxies(proxies))
        self.combine = [parse_combination(text, measure_at) for text in combine]
        self.data = (
            data if data is not None else DigitsDataModule(resize=16, channels=3, batch_size=128)
        )
        self.space = space
        self.archs, self.sample, self.first, self.arch_seed = archs, sample, first, arch_seed
        self.measure_at = sorted(set(measure_at))
        self.metrics = list(dict.fromkeys(metrics))
        self.probe_sizes = sorted(set(probe_sizes))
        self.bn_modes = list(dict.fromkeys(bn_modes))
        splits = [probe_split] if isinstance(probe_split, str) else list(probe_split)
        self.probe_splits = list(dict.fromkeys(splits))
        several = len(self.probe_splits) > 1
        self.probe_split = self.probe_splits if several else self.probe_splits[0]
        self.model_seeds, self.data_seed = [int(seed) for seed in model_seeds], data_seed
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.param_selection: ParamSelection = param_selection
        self.limit_train_batches = limit_train_batches
        self.benchmark, self.trust_benchmark_file, self.table = (
            benchmark,
            trust_benchmark_file,
            table,
        )
        self.dataset, self.split, self.hp = dataset, split, hp
        self.own_epochs = own_epochs
        self.output_dir = Path(output_dir)
        self.accelerator = accelerator
        self.precision = str(precision)
        self.proxy_batch = proxy_batch
        self.combine_by = combine_by
        self.reference_hp = reference_hp
        self.bootstrap = bootstrap
        self.init = init
        self.probe_indices = None if probe_indices is None else [int(i) for i in probe_indices]
        self.probe_file = probe_file
        self.val_source = val_source
        self.truth_column = truth_column
        self.pairs = list(pairs or [])
        self.logger = logger
        self.sinks = check_sinks(sinks, "CorrelationStudy")
        self.implementation = implementation
        self.chunk_size = chunk_size
        self.analyse_only = analyse_only
        self.make_plot = plot
        self.num_threads, self.threads_reason = study_threads(num_threads, accelerator)

    # ------------------------------------------------------------------ configuration
    @property
    def settings(self) -> list[str]:
        """Kernel settings measured, ``n<probe size>-<bn mode>``."""
        return [
            setting_name(size, mode, split)
            for size in self.probe_sizes
            for split in self.probe_splits
            for mode in self.bn_modes
        ]

    @property
    def train_epochs(self) -> int:
        """Epochs every network is trained for."""
        return max([*self.measure_at, self.own_epochs or 0])

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the measured values: a resumed run must match it."""
        return {
            "data": repr(self.data),
            "space": describe(self.space),  # no memory address: a rerun matches
            "measure_at": self.measure_at,
            "metrics": self.metrics,
            "settings": self.settings,
            "probe_split": self.probe_split,
            "model_seeds": self.model_seeds,
            "data_seed": self.data_seed,
            "optimizer": describe(self.optimizer),
            "lr_scheduler": describe(self.lr_scheduler),
            "param_selection": self.param_selection,
            "limit_train_batches": self.limit_train_batches,
            "own_epochs": self.own_epochs,
            "num_threads": self.num_threads,
            "proxies": self.proxies,
            "proxy_batch": self.proxy_batch if self.proxies else None,
            "init": self.init,
            "probe": self.probe_indices or self.probe_file,
            "val_source": self.val_source,
            "eval_order": EVAL_ORDER,
            # only when set, so that stores written before the option still resume
            **({"precision": self.precision} if self.precision != "32-true" else {}),
        }

    def architectures(self) -> list[str]:
        """The architectures of the study, encoded as strings, in study order."""
        return study_architectures(self.space, self.archs, self.sample, self.first, self.arch_seed)

    # ------------------------------------------------------------------ running
    def run(self) -> list[Correlation]:
        """Measure every architecture not yet in ``raw.jsonl``, then correlate and report.

        While measuring, the output folder is locked (:class:`lga_lightning.utils.lock.OutputLock`):
        a second study into it stops with an error naming the first. ``analyse_only`` only
        reads ``raw.jsonl``, so it runs beside a study that is still measuring.
        """
        archs = self.architectures()
        self._check_probe_file()
        self._check_ground_truth_files()
        check_output_dir(self.output_dir, "output_dir")
        raw_path = self.output_dir / RAW_NAME
        # a damaged or foreign store is refused before anything is written
        records = stored_records(raw_path, self.fingerprint(), self.analyse_only)
        if not self.analyse_only:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with OutputLock(self.output_dir, option="`output_dir`"):
                records = resume(raw_path, self.fingerprint())
                self._measure_missing(archs, records, raw_path)
        return self.analyse([records[a] for a in archs if a in records])


def build_parser() -> ArgumentParser:
    """The ``lga-correlate`` argument parser (every argument of :class:`CorrelationStudy`).

    Example:
        >>> build_parser().parse_args(["--first", "3", "--own_epochs", "2"]).first
        3
    """
    return class_parser(PROG, CorrelationStudy, DESCRIPTION)


def run(args: Sequence[str] | None = None) -> list[Correlation]:
    """Run ``lga-correlate`` in-process: parse, measure, correlate, report.

    Returns:
        The correlations (also printed and written to ``output_dir``).
    """
    return run_class(PROG, build_parser(), CorrelationStudy, None if args is None else list(args))


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``lga-correlate`` console script."""
    run(args)


if __name__ == "__main__":
    main()
