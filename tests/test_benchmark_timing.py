"""The benchmarks' shared timing: figures as median (min-max) over repeats, ratios taken repeat by repeat."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from timing import Spread, alternating, ratio  # noqa: E402


def test_spread_quotes_the_median_and_the_range():
    spread = Spread((3.0, 1.0, 2.0, 10.0))
    assert spread.median == 2.5
    assert spread.format(".1f", "x") == "2.5x (1.0-10.0)"
    assert spread.scaled(1000).format(".0f") == "2500 (1000-10000)"
    assert spread.inverse().values == (1 / 3, 1.0, 0.5, 0.1)


def test_ratio_pairs_the_repeats_of_one_round():
    # a slow round (the machine busy) slows both runs alike, so each round's ratio stays 2
    baseline, zoo = Spread((2.0, 20.0, 4.0)), Spread((1.0, 10.0, 2.0))
    assert ratio(baseline, zoo).values == (2.0, 2.0, 2.0)
    assert ratio(zoo, baseline).format(".2f") == "0.50 (0.50-0.50)"


def test_alternating_takes_turns_and_keeps_each_runs_last_result():
    calls = []
    runs = {"zoo": lambda: calls.append("zoo") or len(calls), "baseline": lambda: calls.append("baseline") or len(calls)}
    seconds, results = alternating(runs, repeats=3)
    assert calls == ["zoo", "baseline"] * 3
    assert results == {"zoo": 5, "baseline": 6}
    assert [len(spread.values) for spread in seconds.values()] == [3, 3]
