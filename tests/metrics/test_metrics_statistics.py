"""mio_strategies.metrics.statistics: paired differences, their summary and the noise rules, on hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from mio_strategies.metrics.statistics import (
    PairedSummary,
    margin_standard_errors,
    mean_margin,
    paired_differences,
    summarize,
    within_noise,
)


def test_summary_of_three_seeds_matches_the_hand_computed_mean_and_spread():
    s = summarize([0.30, 0.31, 0.32])
    assert s.n == 3 and s.ahead == 3 and s.values == (0.30, 0.31, 0.32)
    assert s.mean == pytest.approx(0.31)
    assert s.sd == pytest.approx(0.01)  # sqrt((0.01^2 + 0 + 0.01^2) / 2)
    assert s.se == pytest.approx(0.01 / math.sqrt(3))
    assert s.ci95 == pytest.approx(1.96 * 0.01 / math.sqrt(3))
    assert s.format() == "+0.31 +/- 0.01"
    assert s.verdict() == "supported"  # every seed ahead and 0.31 > 2 x 0.01


def test_verdict_rules_separate_support_from_noise_and_from_a_loss():
    # ahead in every seed, but the mean (0.014) is not above twice the spread (0.02): noise
    assert summarize([0.004, 0.014, 0.024]).verdict() == "within noise"
    # a clear mean but one seed behind: not every seed ahead
    assert summarize([1.0, 1.0, -0.1]).verdict() == "within noise"
    assert summarize([-0.5, -0.49, -0.48]).verdict() == "not supported"
    assert summarize([0.0, 0.0]).verdict() == "not supported"  # a mean of zero is no gain
    # one seed cannot support a claim, whatever its size
    one = summarize([3.0])
    assert one.verdict() == "within noise" and math.isnan(one.sd) and math.isnan(one.se)
    assert one.format() == "+3.00"


def test_empty_and_bad_values():
    empty = summarize([])
    assert empty.n == 0 and math.isnan(empty.mean) and empty.format() == "-"
    with pytest.raises(TypeError, match=r"real numbers, got '1\.0' \(str\)"):
        summarize([0.5, "1.0"])
    with pytest.raises(TypeError, match=r"got True \(bool\)"):
        summarize([True])
    assert isinstance(summarize(iter([1, 2])), PairedSummary)  # any iterable of numbers


def test_paired_differences_pair_by_key_and_refuse_unpaired_keys():
    d = paired_differences({1: 25.41, 0: 25.3}, {0: 25.0, 1: 25.1})
    assert list(d) == [1, 0] and d[0] == pytest.approx(0.3) and d[1] == pytest.approx(0.31)
    with pytest.raises(KeyError, match=r"only in the scores \[2\], only in the baseline \[\]"):
        paired_differences({0: 1.0, 2: 1.0}, {0: 1.0})
    with pytest.raises(KeyError, match=r"only in the scores \[\], only in the baseline \['b'\]"):
        paired_differences({"a": 1.0}, {"a": 1.0, "b": 2.0})


def test_margin_standard_errors_are_over_test_images_and_skip_identical_inputs():
    recs = [{"task": "jpeg", "psnr": 30.0 + d, "identity_psnr": 30.0} for d in (-1.0, 0.0, 1.0)]
    recs += [
        {"task": "sr", "psnr": 25.0, "identity_psnr": float("inf")},
        {"task": "sr", "psnr": 26.0, "identity_psnr": 25.0},
    ]
    recs += [
        {"task": "noise", "psnr": 22.0, "identity_psnr": 20.0},
        {"task": "noise", "psnr": 21.0, "identity_psnr": 20.0},
    ]
    se = margin_standard_errors(recs)
    # jpeg: sd 1 over 3 images; sr: one usable pair (no entry); noise: margins 2 and 1, sd 0.7071, / sqrt 2 = 0.5
    assert se == {"jpeg": pytest.approx(1 / 3**0.5), "noise": pytest.approx(0.5)}
    assert list(se) == ["jpeg", "noise"]
    with pytest.raises(KeyError):
        margin_standard_errors([{"task": "sr", "psnr": 1.0}])


def test_mean_margin_keeps_the_crops_standard_error_over_seeds():
    assert mean_margin([19.0, 19.0, 19.0], 20.0, [0.6, 0.6, 0.6]) == (-1.0, pytest.approx(0.6))  # not 0.6 / sqrt 3
    assert mean_margin([19.0, 19.5], 20.0, [0.5, 0.75]) == (-0.75, 0.625)
    assert mean_margin([19.0, 19.5], 20.0, [0.5, None]) == (-0.75, None)  # one run recorded none
    assert mean_margin([21.0], 20.0) == (1.0, None)
    with pytest.raises(ValueError, match="at least one score"):
        mean_margin([], 20.0)
    with pytest.raises(ValueError, match="1 standard errors for 2 scores"):
        mean_margin([19.0, 19.5], 20.0, [0.5])


def test_within_noise_is_two_standard_errors_by_default():
    assert within_noise(-1.0, 0.6) and not within_noise(-1.0, 0.4)
    assert within_noise(1.2, 0.6) and not within_noise(1.21, 0.6)
    assert within_noise(-1.0, 0.4, k=3.0)
    assert not within_noise(0.0, None)  # no standard error recorded: never "within noise"
