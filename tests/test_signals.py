"""One table of directions: the search's ranking and the study's sign agree for every signal."""

from __future__ import annotations

import pytest

from lga_lightning.core.functional import EVOLUTION_METRICS, SCALAR_METRICS
from lga_lightning.core.signals import SIGNALS, expected_sign
from lga_lightning.search.ranking import RECORD_QUANTITIES, Ranking
from recipes._rank import BASELINES


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_ranking_direction_and_study_sign_agree(name):
    sign = expected_sign(name)
    if sign == 0:
        with pytest.raises(ValueError, match="better or worse"):
            Ranking(name)
    else:
        assert Ranking(name).mode == ("max" if sign > 0 else "min")
        # a useful predictor's score rises with accuracy: higher score for the better value
        better, worse = (2.0, 1.0) if sign > 0 else (1.0, 2.0)
        ranking = Ranking(name)
        assert ranking.score({name: better}) > ranking.score({name: worse})


def test_every_recorded_quantity_is_in_the_table():
    for name in (*SCALAR_METRICS, *EVOLUTION_METRICS, *RECORD_QUANTITIES, *BASELINES):
        assert name in SIGNALS, name


def test_published_conventions():
    # TE-NAS: a small condition number is good; KNAS: a large mean is good; loss: small is good
    assert expected_sign("condition_number") == -1
    assert expected_sign("mean") == +1
    assert expected_sign("train_loss") == -1
    assert expected_sign("lga") == +1
    assert expected_sign("kernel_distance") == 0
