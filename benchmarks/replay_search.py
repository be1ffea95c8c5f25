"""Replay random best-of-k searches on a measured study (default: the C=8 N=1 study).

Run: PYTHONPATH=$PWD python benchmarks/replay_search.py [--store docs/study_c16n5/raw.jsonl]
(prints one line per ranking and k; `sig@e` ranks by the signal read at epoch e; cost =
candidate-epochs and measured seconds).
"""

import argparse
import json
import time
from pathlib import Path

from lga_lightning._compat import upgrade_0_2
from lga_lightning.search.ground_truth import nb201_table
from lga_lightning.search.replay import replay_many, table_from_study
from lga_lightning.search.strategies import RandomSearch, SuccessiveHalving

STORE = Path("docs/study_cifar10_subset/raw.jsonl")
SIGNALS = [
    ("lga", -1), ("lga", 0), ("lga", 1), ("condition_number", 0), ("params", 0),
    ("synflow", -1), ("naswot", -1), ("val_acc", 0), ("val_acc", 1), ("benchmark", 0),
]  # fmt: skip


def main() -> None:
    """Print the replay table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=STORE, help="a study's raw.jsonl")
    parser.add_argument("--k", type=int, nargs="+", default=[10, 25], help="candidates")
    parser.add_argument("--searches", type=int, default=1000, help="replays per row")
    parser.add_argument(
        "--halving",
        nargs="*",
        default=["lga", "synflow", "params"],
        help="signals of the successive-halving rows (eta 2 over the study's epochs: every "
        "candidate ranked at initialisation, the better half trained and ranked again)",
    )
    parser.add_argument(
        "--images-per-epoch",
        type=int,
        default=9000,
        help="training images in one of the study's epochs (the benchmark's 12 epochs cost "
        "12 x 50,000 / this of its measured epochs' seconds)",
    )
    args = parser.parse_args()
    store = args.store
    source = nb201_table()
    with store.open() as f:
        lines = [upgrade_0_2(json.loads(line)) for line in f]  # older stores: today's keys
    archs = [line["arch"] for line in lines[1:]]
    measured = lines[0]["fingerprint"]["measure_at"]  # a row past the study's last epoch is skipped
    truth = {a: source.accuracy(a, "cifar10", None, "200") for a in archs}
    ref = {a: source.accuracy(a, "cifar10", None, "12") for a in archs}
    table = table_from_study(store, truth, ref, 12, 50000 / args.images_per_epoch)
    print(len(table.archs))
    for k in args.k:
        for sig, off in SIGNALS:
            if sig != "benchmark" and 1 + off > max(measured):
                continue
            start = time.time()
            r = replay_many(
                lambda k=k: RandomSearch(num_candidates=k, epochs=1), table, sig, args.searches, off
            )
            print(
                f"k={k} {sig}@{1 + off}: mean {r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}] "
                f"oracle {r['oracle']:.2f} random {r['random']:.2f} "
                f"cand-ep {r['candidate_epochs']:.1f} s {r['seconds']:.0f}  "
                f"({time.time() - start:.1f}s replay)",
                flush=True,
            )
    halving_rows(args, table, measured)


def halving_rows(args: argparse.Namespace, table, measured: list[int]) -> None:
    """Successive halving, eta 2, rungs at the study's epochs (read at ``epoch - 1``)."""
    top = max(measured) + 1  # job epochs 1..top read the table at 0..top-1
    for k in args.k:
        for sig in args.halving:

            def make(k: int = k) -> SuccessiveHalving:
                return SuccessiveHalving(num_candidates=k, eta=2, min_epochs=1, max_epochs=top)

            r = replay_many(make, table, sig, args.searches, -1)
            print(
                f"halving k={k} {sig}: mean {r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}] "
                f"oracle {r['oracle']:.2f} random {r['random']:.2f} "
                f"cand-ep {r['candidate_epochs']:.1f} s {r['seconds']:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
