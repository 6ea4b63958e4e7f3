"""The checked-argument helpers of mio_strategies.utils.validation: values accepted, values refused, error types
and messages (the argument's name, the bad value and what is valid)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from mio_strategies.utils.validation import (
    SUGGESTION_CUTOFF,
    choice,
    closest_name,
    did_you_mean,
    finite_float,
    int_in_range,
    is_int,
    non_negative_int,
    positive_int,
    probability,
)

# ------------------------------------------------------------------------------------------------ is_int


@pytest.mark.parametrize("value", [0, 3, -7, 2**70])
def test_is_int_accepts_python_ints(value):
    assert is_int(value)
    assert is_int(value, numpy=True)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 3.0, "3", None, [3]])
def test_is_int_refuses_bools_floats_and_strings(value):
    assert not is_int(value)
    assert not is_int(value, numpy=True)


@pytest.mark.parametrize("value", [np.int64(3), np.uint8(3), torch.tensor(3)])
def test_is_int_accepts_integer_scalars_of_other_libraries_only_when_asked(value):
    assert not is_int(value)
    assert is_int(value, numpy=True)


# ---------------------------------------------------------------------------------------------- integers


def test_positive_int_returns_the_value_as_an_int():
    assert positive_int("steps", 1) == 1
    out = positive_int("steps", np.int64(4), numpy=True)
    assert out == 4 and type(out) is int


@pytest.mark.parametrize("value", [0, -1, True, False, 1.0, "2", None, np.int64(2)])
def test_positive_int_refuses_with_a_value_error_naming_the_argument_and_value(value):
    with pytest.raises(ValueError, match=rf"^steps must be a positive integer, got {re.escape(repr(value))}$"):
        positive_int("steps", value)


def test_positive_int_type_error_names_the_type_and_the_note():
    with pytest.raises(TypeError, match=r"^batch_size must be a positive integer, got float 2\.5$"):
        positive_int("batch_size", 2.5, type_error=True)
    with pytest.raises(TypeError, match=r"^n must be a positive integer, got bool True$"):
        positive_int("n", True, type_error=True)
    # a number out of range stays a ValueError
    with pytest.raises(ValueError, match=r"^tile must be a positive integer \(or None for whole images\), got 0$"):
        positive_int("tile", 0, note=" (or None for whole images)", type_error=True)


def test_non_negative_int_accepts_zero_and_refuses_negatives_and_bools():
    assert non_negative_int("seed", 0) == 0
    assert non_negative_int("seed", 5) == 5
    with pytest.raises(ValueError, match=r"^seed must be a non-negative integer, got -1$"):
        non_negative_int("seed", -1)
    with pytest.raises(ValueError, match=r"^seed must be a non-negative integer, got False$"):
        non_negative_int("seed", False)
    with pytest.raises(TypeError, match=r"^max_pixels must be a non-negative integer, got str 'lots'$"):
        non_negative_int("max_pixels", "lots", type_error=True, numpy=True)
    assert non_negative_int("max_pixels", np.int32(7), numpy=True) == 7


def test_int_in_range_includes_both_bounds():
    assert int_in_range("levels", 1, 1, 3) == 1
    assert int_in_range("levels", 3, 1, 3) == 3
    for bad in (0, 4):
        with pytest.raises(ValueError, match=rf"^levels must be an integer in 1\.\.3, got {bad}$"):
            int_in_range("levels", bad, 1, 3)


def test_int_in_range_with_one_bound_or_none_states_it():
    with pytest.raises(ValueError, match=r"^size must be an integer >= 5 \(a 7x7 conv\), got 4$"):
        int_in_range("size", 4, 5, note=" (a 7x7 conv)")
    with pytest.raises(ValueError, match=r"^k must be an integer <= 2, got 3$"):
        int_in_range("k", 3, high=2)
    assert int_in_range("rank", -5) == -5
    with pytest.raises(TypeError, match=r"^rank must be an integer, got str 'x'$"):
        int_in_range("rank", "x", type_error=True)
    with pytest.raises(ValueError, match=r"^rank must be an integer, got 1\.0$"):
        int_in_range("rank", 1.0)


def test_int_in_range_checks_numpy_values_against_the_bounds():
    assert int_in_range("seed", np.int64(2**32 - 1), 0, 2**32 - 1, numpy=True) == 2**32 - 1
    with pytest.raises(ValueError, match=r"seed must be an integer in 0\.\.4294967295, got np\.int64\(4294967296\)"):
        int_in_range("seed", np.int64(2**32), 0, 2**32 - 1, numpy=True)
    with pytest.raises(TypeError, match=r"seed must be an integer in 0\.\.9, got bool"):
        int_in_range("seed", np.bool_(True), 0, 9, type_error=True, numpy=True)


# ------------------------------------------------------------------------------------------------ floats


@pytest.mark.parametrize("value", [0, 1e-3, 2, np.float32(0.5), np.int64(3), torch.tensor(0.25)])
def test_finite_float_converts_real_numbers_to_float(value):
    out = finite_float("lr", value)
    assert type(out) is float and out == pytest.approx(float(value))


@pytest.mark.parametrize("value", [True, np.bool_(False), "1e-3", None, [1.0], 1 + 2j])
def test_finite_float_refuses_non_numbers_with_a_type_error_naming_the_type(value):
    with pytest.raises(TypeError, match=rf"^lr must be a number, got {type(value).__name__} "):
        finite_float("lr", value)


def test_finite_float_can_refuse_non_numbers_with_a_value_error():
    with pytest.raises(ValueError, match=r"^eta_min must be a number in \[0, inf\), got str 'x'$"):
        finite_float("eta_min", "x", low=0, type_error=False)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_finite_float_refuses_nan_and_infinity(value):
    with pytest.raises(ValueError, match=r"^lr must be a finite number, got "):
        finite_float("lr", value)


def test_finite_float_bounds_closed_by_default():
    assert finite_float("p", 0, low=0, high=1) == 0.0
    assert finite_float("p", 1, low=0, high=1) == 1.0
    with pytest.raises(ValueError, match=r"^p must be in \[0, 1\], got 1\.5$"):
        finite_float("p", 1.5, low=0, high=1)
    with pytest.raises(ValueError, match=r"^p must be in \[0, 1\], got -0\.1$"):
        finite_float("p", -0.1, low=0, high=1)


def test_finite_float_open_bounds_exclude_the_bound_itself():
    with pytest.raises(ValueError, match=r"^lr must be in \(0, inf\), got 0$"):
        finite_float("lr", 0, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"^ema_decay must be in \[0, 1\), got 1\.0$"):
        finite_float("ema_decay", 1.0, low=0, high=1, high_open=True)
    assert finite_float("ema_decay", 0.999, low=0, high=1, high_open=True) == 0.999
    with pytest.raises(ValueError, match=r"^x must be in \(-inf, 2\], got 3$"):
        finite_float("x", 3, high=2)
    with pytest.raises(ValueError, match=r"^x must be in \[0, inf\) \(paper: 1e-7\), got -1$"):
        finite_float("x", -1, low=0, note=" (paper: 1e-7)")


def test_probability_is_a_closed_unit_interval():
    assert probability("p", 0) == 0.0 and probability("p", 1) == 1.0 and probability("p", 0.25) == 0.25
    with pytest.raises(ValueError, match=r"^p must be in \[0, 1\], got 1\.01$"):
        probability("p", 1.01)
    with pytest.raises(ValueError, match=r"^p must be a finite number, got nan$"):
        probability("p", math.nan)
    with pytest.raises(TypeError, match=r"^p must be a number in \[0, 1\], got bool True$"):
        probability("p", True)


# ----------------------------------------------------------------------------------------------- choices


def test_choice_returns_a_valid_value():
    assert choice("optimizer", "adamw", ("adam", "adamw")) == "adamw"


def test_choice_suggests_a_near_miss_and_lists_the_valid_values():
    with pytest.raises(
        ValueError, match=r"^unknown optimizer 'adamm': did you mean 'adam'\? valid optimizers are \['adam', 'adamw'\]$"
    ):
        choice("optimizer", "adamm", ("adam", "adamw"))


def test_choice_suggests_nothing_for_an_unrelated_value():
    with pytest.raises(ValueError, match=r"^unknown optimizer 'sgd': valid optimizers are \['adam', 'adamw'\]$"):
        choice("optimizer", "sgd", ("adam", "adamw"))


def test_choice_message_uses_what_plural_and_note():
    with pytest.raises(
        ValueError, match=r"^unknown random stream 'x': valid streams are \['a', 'b'\] \(or None, the default\)$"
    ):
        choice("stream", "x", ["a", "b"], what="random stream", plural="streams", note=" (or None, the default)")


@pytest.mark.parametrize("value", [None, 1, ["adam"]])
def test_choice_refuses_non_strings_with_a_value_error(value):
    with pytest.raises(ValueError, match=rf"^unknown optimizer {re.escape(repr(value))}: valid optimizers are"):
        choice("optimizer", value, ("adam", "adamw"))


def test_choice_raises_the_callers_error_type():
    class UnknownThing(KeyError):
        def __str__(self) -> str:
            return str(self.args[0])

    with pytest.raises(
        UnknownThing, match=r"^unknown config key 'perod': did you mean 'period'\? valid keys are \['period'\]$"
    ):
        choice("key", "perod", ["period"], what="config key", plural="keys", error=UnknownThing)


def test_choice_is_case_sensitive_but_suggests_the_right_case():
    with pytest.raises(ValueError, match=r"did you mean 'SRResNet'\?"):
        choice("backbone", "srresnet", ["SRResNet", "SwinIR"])


def test_suggestion_cutoff_separates_near_misses_from_shared_letters():
    # the examples the cutoff was chosen on: near misses above it, names sharing a few letters below it
    assert closest_name("period_iter", ["period_iters"]) == "period_iters"
    assert closest_name("batchsize", ["batch_size"]) == "batch_size"
    assert closest_name("srresnt", ["srresnet"]) == "srresnet"
    assert closest_name("bogus_key", ["log_every"]) is None
    assert closest_name("lrate", ["strategy"]) is None
    # the cutoff is a parameter: at 0 every name is close enough, at 1 only an exact (case-insensitive) match
    assert closest_name("lrate", ["strategy"], cutoff=0.0) == "strategy"
    assert closest_name("ADAM", ["adam"], cutoff=1.0) == "adam"
    assert closest_name("adamm", ["adam"], cutoff=1.0) is None
    assert 0 < SUGGESTION_CUTOFF < 1


def test_did_you_mean_is_empty_without_a_close_name():
    assert did_you_mean("srresnt", ["srresnet", "swinir"]) == "did you mean 'srresnet'? "
    assert did_you_mean("zzz", ["srresnet", "swinir"]) == ""
    assert did_you_mean("x", []) == ""
