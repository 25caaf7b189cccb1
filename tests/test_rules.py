"""Severity rules: defaults, strictest wins, files validated."""

from __future__ import annotations

import pytest

from redline.errors import InputError
from redline.rules import load_rules


@pytest.mark.parametrize(
    "layer,regime,activity,severity",
    [
        ("reserve", "core", "tourism", "critical"),
        ("reserve", "core_protection", "farmland", "critical"),
        ("reserve", "buffer", "construction", "high"),
        ("reserve", "experimental", "mining", "high"),
        ("reserve", "general_control", "tourism", "medium"),
        ("redline", "redline", "energy", "high"),
        ("redline", "redline", "farmland", "medium"),
        ("redline", "redline", "other", "low"),
    ],
)
def test_default_rules(layer, regime, activity, severity):
    assert load_rules().grade(layer, regime, activity)[0] == severity


def test_strictest_matching_rule_wins_whatever_the_order(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        'version = "t"\n'
        '[[rule]]\nlayer = "redline"\nactivities = ["*"]\nseverity = "low"\n'
        '[[rule]]\nlayer = "redline"\nactivities = ["road"]\nseverity = "critical"\n'
    )
    rules = load_rules(path)
    assert rules.grade("redline", "redline", "transport") == ("critical", "rule 2")
    assert rules.grade("redline", "redline", "mining")[0] == "low"
    assert rules.grade("reserve", "core", "mining") == (None, None)


@pytest.mark.parametrize(
    "body,match",
    [
        ('[[rule]]\nlayer = "redline"\nseverity = "extreme"\n', "severity must be one of"),
        ('[[rule]]\nlayer = "roads"\nseverity = "low"\n', "layer must be one of"),
        ('[[rule]]\nlayer = "reserve"\nregimes = ["moon"]\nseverity = "low"\n', "unknown reserve zone"),
        ("permit_cover = 0.9\n", "no \\[\\[rule\\]\\]"),
        ("[[rule\n", "cannot read rules"),
    ],
)
def test_bad_rule_files(tmp_path, body, match):
    path = tmp_path / "rules.toml"
    path.write_text(body)
    with pytest.raises(InputError, match=match):
        load_rules(path)


def test_a_rules_file_is_read_completely(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        'version = "省-2026.2"\npermit_cover = 0.8\n'
        '[verdicts]\ncritical = "prohibited"\nhigh = "needs_approval"\nlow = "clear"\n'
        '[[rule]]\nname = "核心区"\nlayer = "reserve"\nregimes = ["核心区", "缓冲区"]\nseverity = "critical"\n'
        '[[rule]]\nlayer = "redline"\nregimes = ["水源涵养"]\nactivities = ["road", "mining"]\nseverity = "high"\n'
        '[[rule]]\nlayer = "redline"\nregimes = ["*"]\nactivities = ["*"]\nseverity = "low"\n',
        encoding="utf-8",
    )
    rules = load_rules(path)
    assert rules.version == "省-2026.2" and rules.permit_cover == 0.8
    assert rules.verdicts == (("critical", "prohibited"), ("high", "needs_approval"), ("low", "clear"))
    assert [r.name for r in rules.rules] == ["核心区", "rule 2", "rule 3"]
    first, second, third = rules.rules
    assert (first.layer, first.regimes, first.activities) == ("reserve", frozenset({"core", "buffer"}), None)
    # red-line regimes are function types, kept as written (not reserve zone words)
    assert (second.regimes, second.activities) == (frozenset({"水源涵养"}), frozenset({"transport", "mining"}))
    assert (third.regimes, third.activities) == (None, None)
    assert rules.grade("reserve", "buffer", "farmland") == ("critical", "核心区")
    assert rules.grade("reserve", "experimental", "farmland") == (None, None)
    assert rules.grade("redline", "水源涵养", "transport") == ("high", "rule 2")
    assert rules.grade("redline", "防风固沙", "transport") == ("low", "rule 3")
    assert [rules.verdict(s) for s in ("critical", "high", "medium", "low", None)] == [
        "prohibited",
        "needs_approval",
        "needs_approval",
        "clear",
        "clear",
    ]


def test_equally_strict_rules_the_first_one_names_the_conflict(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\nname = "a"\nlayer = "redline"\nseverity = "high"\n'
        '[[rule]]\nname = "b"\nlayer = "redline"\nseverity = "high"\n'
    )
    rules = load_rules(path)
    assert rules.grade("redline", "x", "mining") == ("high", "a")
    assert (rules.version, rules.permit_cover, rules.verdicts) == ("unversioned", 0.9, ())
    assert rules.verdict("high") == "needs_approval" and rules.verdict(None) == "clear"


def test_default_rules_are_versioned_with_permit_cover_and_verdicts():
    rules = load_rules()
    assert rules.version == "2026.1" and rules.permit_cover == 0.9
    assert rules.verdict("critical") == "prohibited" and rules.verdict(None) == "clear"
    assert all(r.name and not r.name.startswith("rule ") for r in rules.rules)


@pytest.mark.parametrize(
    "body,message",
    [
        ('[[rule]]\nseverity = "low"\n', "rules.toml: rule 1 lacks 'layer'"),
        (
            '[[rule]]\nlayer = "redline"\nseverity = "low"\n[[rule]]\nlayer = "redline"\n',
            "rules.toml: rule 2 lacks 'severity'",
        ),
        ('[[rule]]\nlayer = "redline"\nseverity = "low"\npermit_cover = 0\n', None),
        (
            'permit_cover = 0\n[[rule]]\nlayer = "redline"\nseverity = "low"\n',
            "rules.toml: permit_cover must be in (0, 1]",
        ),
        ('permit_cover = 1.01\n[[rule]]\nlayer = "redline"\nseverity = "low"\n', "permit_cover must be in (0, 1]"),
        (
            '[verdicts]\nhigh = "maybe"\n[[rule]]\nlayer = "redline"\nseverity = "low"\n',
            "rules.toml: [verdicts] high = 'maybe': expected a severity = one of",
        ),
        (
            '[verdicts]\nsevere = "clear"\n[[rule]]\nlayer = "redline"\nseverity = "low"\n',
            "[verdicts] severe = 'clear'",
        ),
        ('[[rule]]\nlayer = "redline"\nactivities = ["volcano"]\nseverity = "low"\n', "unknown activity 'volcano'"),
    ],
)
def test_rule_file_errors_say_where(tmp_path, body, message):
    path = tmp_path / "rules.toml"
    path.write_text(body)
    if message is None:  # a key inside a [[rule]] table belongs to the rule: the file is fine
        assert load_rules(path).permit_cover == 0.9
        return
    with pytest.raises(InputError) as info:
        load_rules(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path)) or "unknown activity" in message


def test_permit_cover_of_one_is_allowed_and_missing_file_is_an_input_error(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('permit_cover = 1\n[[rule]]\nlayer = "redline"\nseverity = "low"\n')
    assert load_rules(path).permit_cover == 1.0
    with pytest.raises(InputError, match="cannot read rules .*nope.toml"):
        load_rules(tmp_path / "nope.toml")


def test_wildcard_regimes_of_a_reserve_rule(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nlayer = "reserve"\nregimes = ["*"]\nactivities = ["mining"]\nseverity = "high"\n')
    (rule,) = load_rules(path).rules
    assert rule.regimes is None and rule.activities == frozenset({"mining"})
    assert load_rules(path).grade("reserve", "experimental", "mining") == ("high", "rule 1")
