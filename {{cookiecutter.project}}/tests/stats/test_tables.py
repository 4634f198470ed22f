"""Table formatting: LaTeX escaping and the shared precision of a metric's numbers."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package }}.stats.tables import _p, decimals_for, format_number, latex_escape


def test_latex_escape_spells_specials_and_symbols():
    assert latex_escape("no_pos & 5% #1") == r"no\_pos \& 5\% \#1"
    assert latex_escape("0.91 ± 0.01") == r"0.91 $\pm$ 0.01"
    assert latex_escape("[-0.014, -0.005]") == "[$-$0.014, $-$0.005]"  # minus signs, not hyphens
    assert latex_escape("pre-ln − full, p <0.001") == "pre-ln $-$ full, p $<$0.001"  # a hyphen in a name stays


@pytest.mark.parametrize(
    "scales, decimals",
    [([0.0042, 0.003], 4), ([0.042], 3), ([1.5], 1), ([15.0, 3.0], 0), ([0.0, 0.0], None)],
)
def test_decimals_keep_two_significant_digits_of_the_largest_spread(scales, decimals):
    assert decimals_for(scales) == decimals


def test_numbers_without_a_spread_stay_readable():
    assert format_number(1_234_567.0, None) == "1234567"
    assert format_number(0.123456, None) == "0.1235"
    assert format_number(None, 3) == "n/a"


def test_p_values_near_alpha_read_as_different_numbers():
    assert [_p(0.0496, star=True), _p(0.0504), _p(0.0625)] == ["0.0496 *", "0.0504", "0.0625"]
    assert [_p(0.125), _p(0.0004), _p(None)] == ["0.125", "<0.001", "n/a"]
