"""Seconds read from the environment: one rule and one error line for every such setting."""

from __future__ import annotations

import pytest
from tfdeploy.envvalues import env_seconds
from tfdeploy.errors import ConfigError, ValidationError


def test_unset_or_blank_is_the_default_and_a_number_in_range_is_read():
    assert env_seconds({}, "X_S", 30) == 30
    assert env_seconds({"X_S": "  "}, "X_S", 30) == 30
    assert env_seconds({"X_S": "0"}, "X_S", 30, most=900) == 0
    assert env_seconds({"X_S": " 2.5 "}, "X_S", 30, most=900) == 2.5


@pytest.mark.parametrize("raw", ["soon", "-1", "901", "nan", "inf"])
def test_anything_else_is_one_line_naming_the_variable_and_the_range(raw):
    with pytest.raises(ConfigError) as caught:
        env_seconds({"X_S": raw}, "X_S", 30, most=900, error=ConfigError, hint="set it to e.g. 30")
    assert str(caught.value) == f"X_S={raw!r} is not a number of seconds from 0 to 900; set it to e.g. 30"


def test_zero_is_refused_where_the_setting_must_be_above_it():
    with pytest.raises(ValidationError, match=r"^X_S='0' is not a number of seconds above 0$"):
        env_seconds({"X_S": "0"}, "X_S", 60, zero_ok=False)
