"""Replay random best-of-k searches on the C=8 N=1 study (docs/study_cifar10_subset/raw.jsonl).

Run: PYTHONPATH=$PWD python benchmarks/replay_search.py  (prints one line per ranking and k;
`sig@e` ranks by the signal read at epoch e; cost = candidate-epochs and measured seconds).
"""

import time
from lga_lightning.ground_truth import nb201_table
from lga_lightning.search.replay import table_from_study, replay_many
from lga_lightning.search.strategies import RandomSearch, SuccessiveHalving

src = nb201_table()
import json

archs = [
    json.loads(l)["arch"] for l in open("docs/study_cifar10_subset/raw.jsonl") if '"arch"' in l
]
truth = {a: src.accuracy(a, "cifar10", None, "200") for a in archs}
ref = {a: src.accuracy(a, "cifar10", None, "12") for a in archs}
t = table_from_study("docs/study_cifar10_subset/raw.jsonl", truth, ref, 12, 50000 / 9000)
print(len(t.archs))
for k in (10, 25):
    for sig, off in (
        ("lga", -1),
        ("lga", 0),
        ("lga", 1),
        ("condition_number", 0),
        ("params", 0),
        ("synflow", -1),
        ("naswot", -1),
        ("val_acc", 1),
        ("benchmark", 0),
    ):
        t0 = time.time()
        r = replay_many(lambda: RandomSearch(num_candidates=k, epochs=1), t, sig, 1000, off)
        print(
            f"k={k} {sig}@{1 + off}: mean {r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}] oracle {r['oracle']:.2f} random {r['random']:.2f} cand-ep {r['candidate_epochs']:.1f} s {r['seconds']:.0f}  ({time.time() - t0:.1f}s replay)",
            flush=True,
        )
