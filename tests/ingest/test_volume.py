"""The adaptive volume band."""

from evergreen.ingest.volume import band


def test_band_is_median_plus_minus_the_wider_of_mad_and_floor():
    median, low, high = band([100, 100, 100, 100, 100, 100, 100], mads=5, min_fraction=0.25)
    assert (median, low, high) == (100, 75, 125)  # no spread at all: the floor share decides

    median, low, high = band([50, 100, 150, 100, 100, 60, 140], mads=5, min_fraction=0.25)
    mad = 40  # |50-100|, |150-100|, 0, 0, 0, 40, 40 -> median 40
    assert median == 100 and high - median == 5 * 1.4826 * mad
