"""Severity rules: defaults, strictest wins, files validated."""

from __future__ import annotations

import pytest

from redline.errors import InputError
from redline.rules import load_rules


@pytest.mark.parametrize("layer,regime,activity,severity", [
    ("reserve", "core", "tourism", "critical"),
    ("reserve", "core_protection", "farmland", "critical"),
    ("reserve", "buffer", "construction", "high"),
    ("reserve", "experimental", "mining", "high"),
    ("reserve", "general_control", "tourism", "medium"),
    ("redline", "redline", "energy", "high"),
    ("redline", "redline", "farmland", "medium"),
    ("redline", "redline", "other", "low"),
])
def test_default_rules(layer, regime, activity, severity):
    assert load_rules().grade(layer, regime, activity)[0] == severity


def test_strictest_matching_rule_wins_whatever_the_order(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('version = "t"\n'
                    '[[rule]]\nlayer = "redline"\nactivities = ["*"]\nseverity = "low"\n'
                    '[[rule]]\nlayer = "redline"\nactivities = ["road"]\nseverity = "critical"\n')
    rules = load_rules(path)
    assert rules.grade("redline", "redline", "transport") == ("critical", "rule 2")
    assert rules.grade("redline", "redline", "mining")[0] == "low"
    assert rules.grade("reserve", "core", "mining") == (None, None)


@pytest.mark.parametrize("body,match", [
    ('[[rule]]\nlayer = "redline"\nseverity = "extreme"\n', "severity must be one of"),
    ('[[rule]]\nlayer = "roads"\nseverity = "low"\n', "layer must be one of"),
    ('[[rule]]\nlayer = "reserve"\nregimes = ["moon"]\nseverity = "low"\n', "unknown reserve zone"),
    ('permit_cover = 0.9\n', "no \\[\\[rule\\]\\]"),
    ('[[rule\n', "cannot read rules"),
])
def test_bad_rule_files(tmp_path, body, match):
    path = tmp_path / "rules.toml"
    path.write_text(body)
    with pytest.raises(InputError, match=match):
        load_rules(path)
