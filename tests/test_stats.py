import pytest

from distill_ray.stats import difference_interval, wilson_interval


@pytest.mark.parametrize(
    ("correct", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),  # Wilson stays inside [0, 1] where the normal approximation would not
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
        (403, 500, 0.7691, 0.8383),
    ],
)
def test_wilson_interval_matches_reference_values(correct, n, low, high):
    got_low, got_high = wilson_interval(correct, n)
    assert got_low == pytest.approx(low, abs=5e-4)
    assert got_high == pytest.approx(high, abs=5e-4)


def test_wilson_interval_of_nothing_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_difference_interval_contains_zero_for_seed_sized_noise():
    # 85% vs 88% on 100 items each: the kind of per-step wobble the seed's tables show
    d, low, high = difference_interval(85, 100, 88, 100)
    assert d == pytest.approx(-0.03)
    assert low < 0 < high


def test_difference_interval_excludes_zero_for_a_real_gap():
    d, low, high = difference_interval(440, 500, 360, 500)  # 88% vs 72% on MATH-500
    assert d == pytest.approx(0.16)
    assert 0 < low < d < high
