"""Strategies driven without a Trainer: counts, successive-halving arithmetic, determinism."""

from __future__ import annotations

import math
import random

import pytest

from lga_lightning.search import (
    Plain,
    RandomSearch,
    Ranking,
    RegularizedEvolution,
    SuccessiveHalving,
)
from lga_lightning.search.spaces import NB201Space, nb201
from lga_lightning.search.store import ResultsStore, StoreMismatchError


def fake_score(arch: str, epoch: int) -> float:
    """A deterministic score of (arch, epoch) independent of any strategy."""
    return random.Random(f"{arch}/{epoch}").random()


def drive(strategy, seed=0, parallel=1, shuffle_reports=False):
    """Run a strategy to completion with up to `parallel` jobs in flight; return trained epochs."""
    strategy.bind(NB201Space(), seed)
    reports, epochs_trained, pending = [], 0, []
    state: dict[int, int] = {}
    rng = random.Random(123)
    while not strategy.done:
        while len(pending) < parallel:
            job = strategy.propose()
            if job is None:
                break
            pending.append(job)
        assert pending, "strategy stalled"
        batch, pending = pending, []
        if shuffle_reports:
            rng.shuffle(batch)
        for job in batch:
            start = state.get(job.candidate, 0)
            epochs_trained += job.epochs - start
            state[job.candidate] = job.epochs
            for e in job.measure_at:
                rec = {
                    "candidate": job.candidate,
                    "arch": job.arch,
                    "epoch": e,
                    "status": "ok",
                    "score": fake_score(job.arch, e),
                }
                reports.append(rec)
                strategy.report(rec)
    return reports, epochs_trained


@pytest.mark.parametrize(
    ("n", "eta", "r", "cap", "rungs"),
    [
        (4, 2, 1, None, [(4, 1), (2, 2), (1, 4)]),
        (9, 3, 1, None, [(9, 1), (3, 3), (1, 9)]),
        (10, 3, 2, None, [(10, 2), (3, 6), (1, 18)]),
        (8, 2, 1, 4, [(8, 1), (4, 2), (2, 4)]),
        (5, 2, 1, None, [(5, 1), (2, 2), (1, 4)]),
    ],
)
def test_successive_halving_arithmetic(n, eta, r, cap, rungs):
    s = SuccessiveHalving(num_candidates=n, eta=eta, min_epochs=r, max_epochs=cap)
    assert s.rungs == rungs
    reports, trained = drive(s)
    # epochs: every rung-k candidate trains from e_{k-1} to e_k
    expected = sum(nk * (ek - (rungs[k - 1][1] if k else 0)) for k, (nk, ek) in enumerate(rungs))
    assert trained == expected == s.total_epochs
    assert len(reports) == sum(nk for nk, _ in rungs) == s.total_evaluations
    # rung k+1 holds exactly the top n_{k+1} of rung k by score
    for k in range(len(rungs) - 1):
        rung = [x for x in reports if x["epoch"] == rungs[k][1]]
        nxt = sorted(x["candidate"] for x in reports if x["epoch"] == rungs[k + 1][1])
        top = sorted(rung, key=lambda x: -x["score"])[: rungs[k + 1][0]]
        assert nxt == sorted(x["candidate"] for x in top)
    assert len({x["candidate"] for x in reports}) == n


def test_successive_halving_failed_never_advance():
    s = SuccessiveHalving(num_candidates=4, eta=2)
    s.bind(NB201Space(), 0)
    jobs = [s.propose() for _ in range(4)]
    for j in jobs:
        failed = j.candidate in (0, 1, 2)
        s.report(
            {
                "candidate": j.candidate,
                "epoch": 1,
                "status": "diverged" if failed else "ok",
                "score": -math.inf if failed else 0.5,
            }
        )
    nxt = s.propose()
    assert nxt.candidate == 3 and nxt.epochs == 2 and s.propose() is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomSearch(num_candidates=7, epochs=2),
        lambda: Plain(num_candidates=3, epochs=3),
        lambda: RegularizedEvolution(num_candidates=12, population_size=4, sample_size=2),
        lambda: SuccessiveHalving(num_candidates=6, eta=2),
    ],
)
def test_deterministic_and_independent_of_parallelism(make):
    a, ta = drive(make(), seed=5)
    b, tb = drive(make(), seed=5)
    assert a == b and ta == tb == make().total_epochs
    assert len(a) == make().total_evaluations
    c, _ = drive(make(), seed=6)
    assert [x["arch"] for x in a] != [x["arch"] for x in c]


def test_evolution_batches_do_not_depend_on_report_order_or_processes():
    make = lambda: RegularizedEvolution(  # noqa: E731
        num_candidates=14, population_size=4, sample_size=2, batch_size=2
    )
    one, _ = drive(make(), seed=1, parallel=1)
    two, _ = drive(make(), seed=1, parallel=2, shuffle_reports=True)
    four, _ = drive(make(), seed=1, parallel=4, shuffle_reports=True)
    key = lambda rs: sorted((x["candidate"], x["arch"]) for x in rs)  # noqa: E731
    assert key(one) == key(two) == key(four)


def test_evolution_children_are_mutations_of_the_tournament_winner():
    s = RegularizedEvolution(num_candidates=10, population_size=3, sample_size=3)
    reports, _ = drive(s, seed=2)
    archs = {x["candidate"]: x["arch"] for x in reports}
    scores = {x["candidate"]: x["score"] for x in reports}
    population = [0, 1, 2]
    for c in range(3, 10):
        # sample_size == population_size: the parent is the best living member
        parent = max(population, key=lambda m: (scores[m], -m))
        pairs = zip(nb201.parse(archs[c]), nb201.parse(archs[parent]), strict=True)
        diff = sum(a != b for a, b in pairs)
        assert diff == 1
        population = [*population[1:], c]  # aging: the oldest leaves


def test_random_search_samples_distinct_canonical_cells():
    reports, _ = drive(RandomSearch(num_candidates=30), seed=0)
    assert len({nb201.canonical(x["arch"]) for x in reports}) == 30


def test_plain_evaluates_the_given_list_in_order():
    archs = [nb201.from_index(i) for i in (5, 70, 900)]
    reports, trained = drive(Plain(archs=archs, epochs=2), seed=0)
    assert [(x["arch"], x["epoch"]) for x in reports] == [(a, e) for a in archs for e in (1, 2)]
    assert trained == 6


def test_ranking_directions_and_errors():
    assert Ranking("lga").score({"lga": 0.3, "status": "ok"}) == 0.3
    assert Ranking("train_loss").score({"train_loss": 2.0, "status": "ok"}) == -2.0
    assert Ranking("lga").score({"lga": 0.3, "status": "diverged"}) == -math.inf
    combo = Ranking(lambda r: r["lga"] - r["train_loss"])
    assert combo.score({"lga": 1.0, "train_loss": 0.25, "status": "ok"}) == 0.75
    with pytest.raises(ValueError, match="direction='max' or direction='min'"):
        Ranking("kernel_distance")  # no convention: the user says which way is better
    with pytest.raises(ValueError, match="cannot rank by"):
        Ranking("nope", available=("lga",))


def test_store_drops_torn_line_and_checks_header(tmp_path):
    path = tmp_path / "results.jsonl"
    store = ResultsStore(path)
    assert store.open({"kind": "search", "seed": 0}) == []
    store.append({"kind": "measurement", "candidate": 0, "epoch": 1, "lga": float("nan")})
    store.close()
    with open(path, "ab") as f:
        f.write(b'{"kind": "measurement", "candid')  # torn by a crash
    records = ResultsStore(path).open({"kind": "search", "seed": 0})
    assert len(records) == 1 and math.isnan(records[0]["lga"])
    assert path.read_bytes().endswith(b"}\n")
    with pytest.raises(StoreMismatchError, match="seed: stored 0, now 1"):
        ResultsStore(path).open({"kind": "search", "seed": 1})


def test_leaderboard_ranks_survivors_of_more_rungs_first():
    """A candidate trained further (it survived a rung) outranks a higher score at fewer epochs;
    failed candidates come last whatever their epoch."""
    from lga_lightning.search import leaderboard as lb

    records = [
        {"candidate": 0, "epoch": 1, "status": "ok", "score": 0.9, "arch": "a"},
        {"candidate": 1, "epoch": 1, "status": "ok", "score": 0.5, "arch": "b"},
        {"candidate": 1, "epoch": 3, "status": "ok", "score": 0.2, "arch": "b"},
        {"candidate": 2, "epoch": 3, "status": "diverged", "score": -math.inf, "arch": "c"},
        {"candidate": 3, "epoch": 1, "status": "ok", "score": 0.9, "arch": "d"},
    ]
    rows = lb.build(records)
    assert [(r["rank"], r["candidate"], r["epoch"]) for r in rows] == [
        (1, 1, 3),
        (2, 0, 1),
        (3, 3, 1),
        (4, 2, 3),
    ]


def test_a_new_strategy_says_what_it_supports_without_any_type_list():
    from lga_lightning.search import LGASearch
    from lga_lightning.search.spaces import NB201Space
    from lga_lightning.search.strategies import Plain, Strategy

    class FixedOrder(Plain):
        """A user's strategy: its own class, no list to register it in."""

    class Greedy(Strategy):
        def _next(self):
            return None

    combined = {"rank_by": ["lga", "params"]}
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    LGASearch(NB201Space(C=4, N=1), FixedOrder(archs=[arch]), **combined)  # accepted
    with pytest.raises(ValueError, match="Greedy decides on scores as they arrive"):
        LGASearch(NB201Space(C=4, N=1), Greedy(), **combined)


def test_a_strategy_written_from_the_base_class_is_accepted_like_the_packaged_ones():
    from lga_lightning.search import LGASearch
    from lga_lightning.search.spaces import NB201Space
    from lga_lightning.search.strategies import Job, Strategy

    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"

    class OneArch(Strategy):
        """Proposes one fixed architecture and never looks at a score."""

        decides_on_scores = False

        def _next(self):
            self.finished = True
            return Job(self._new_candidate(), arch, 1, (1,))

        def _finish(self, job, record):
            pass

    search = LGASearch(NB201Space(C=4, N=1), OneArch(), rank_by=["lga", "params"])
    assert search.ranking.combined == ("lga", "params")
    strategy = search.strategy
    strategy.bind(NB201Space(C=4, N=1), seed=0)
    job = strategy.propose()
    strategy.report({"candidate": job.candidate, "epoch": 1, "status": "ok", "score": 0.5})
    assert (job.candidate, job.arch, strategy.done) == (0, arch, True)
    assert repr(strategy) == "OneArch()"
