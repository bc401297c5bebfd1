"""JSON conditions (SPEC section 14): parsed at load, judged on real answers from a loopback
target, through both HTTP clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keepalive.errors import ConfigError
from keepalive.probe.checker import judge_body
from keepalive.probe.conditions import ConditionError, parse_condition
from keepalive.targets import Target, load_targets_file
from tests.fakes.targets import TargetServer
from tests.test_check import check

BASE = {"interval": 60.0, "failure_threshold": 2, "success_threshold": 1, "timeout": 5.0}


def conditions(*texts: str) -> tuple[Any, ...]:
    return tuple(parse_condition(t) for t in texts)


def target(url: str, *texts: str) -> Target:
    return Target(
        name="t", url=url, interval=1.0, failure_threshold=1, success_threshold=1, timeout=2.0,
        conditions=conditions(*texts),
    )  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[TargetServer]:
    with TargetServer() as srv:
        yield srv


@pytest.fixture(params=[True, False], ids=["lean", "aiohttp"])
def lean(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


PAYLOAD = {
    "status": "ok",
    "clients": 3,
    "queue": {"depth": 250},
    "version": "2.3",
    "workers": [{"name": "a", "alive": True}, {"name": "b", "alive": False}],
    "ratio": 0.5,
    "flag": True,
}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("$.clients >= 1", None),
        ("$.queue.depth < 100", "condition failed: $.queue.depth < 100 (got 250)"),
        ('$.version == "2.3"', None),
        ('$.version != "2.3"', 'condition failed: $.version != "2.3" (got "2.3")'),
        ("$.missing == 1", "condition failed: $.missing == 1 (got nothing)"),
        ("$.workers[*].alive == true", "condition failed: $.workers[*].alive == true (got false)"),
        ('$.workers[?@.name == "a"].alive == true', None),
        ("$.ratio <= 0.5", None),
        ("$.ratio > 0.5", "condition failed: $.ratio > 0.5 (got 0.5)"),
        # true is not 1, and a string is not a number: no accidental pass.
        ("$.flag == 1", "condition failed: $.flag == 1 (got true)"),
        ('$.clients > "1"', 'condition failed: $.clients > "1" (got 3)'),
        ('$.queue == {"depth": 250}', None),
        ("$.clients == 3.0", None),
    ],
)
def test_a_condition_judges_the_answer_of_a_real_target(
    server: TargetServer, lean: bool, text: str, reason: str | None
) -> None:
    server.set_mode("cond", "ok", payload=PAYLOAD)
    (result,) = check(target(server.url("cond"), text), lean=lean)
    assert result.reason == reason
    assert result.ok is (reason is None)


def test_every_condition_must_hold_and_the_first_failure_is_the_reason(server: TargetServer) -> None:
    server.set_mode("all", "ok", payload=PAYLOAD)
    (result,) = check(target(server.url("all"), "$.clients >= 1", "$.queue.depth < 100", "$.ratio > 9"))
    assert result.reason == "condition failed: $.queue.depth < 100 (got 250)"


def test_the_status_is_judged_before_the_conditions(server: TargetServer) -> None:
    server.set_mode("deg", "ok", payload={**PAYLOAD, "status": "degraded"})
    (result,) = check(target(server.url("deg"), "$.queue.depth < 100"))
    assert result.reason == 'status is "degraded"'


def test_a_long_value_is_shortened_and_its_control_characters_removed() -> None:
    # JSON escapes C0 controls itself; a C1 one (U+009B, a terminal's CSI) becomes a space.
    body = json.dumps({"status": "ok", "v": "x\n\x1b\x9b[31m" + "y" * 100}).encode()
    reason = judge_body(body, ("ok",), conditions=conditions('$.v == "z"'))
    assert reason == 'condition failed: $.v == "z" (got "x\\n\\u001b [31m' + "y" * 42 + "...)"


def test_an_answer_from_another_host_shows_no_value() -> None:
    body = json.dumps({"status": "ok", "secret": 42}).encode()
    reason = judge_body(body, ("ok",), foreign=True, conditions=conditions("$.secret < 1"))
    assert reason == "condition failed: $.secret < 1"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("$.a", "no comparison operator (one of == != <= >= < >)"),
        ("$.a = 1", "no comparison operator (one of == != <= >= < >)"),
        ("$.a == ok", "the right-hand side is not a JSON literal (strings need double quotes)"),
        ("$.a == NaN", "the right-hand side is not a JSON literal (strings need double quotes)"),
        ("a.b == 1", "must start with a JSONPath query ($...)"),
        ("$.a[ == 1", "invalid JSONPath: "),
        ("", "expected a string like '$.clients >= 1'"),
    ],
)
def test_a_bad_condition_is_refused_with_one_line(text: str, problem: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert str(caught.value).startswith(problem)
    assert "\n" not in str(caught.value)


def test_operators_inside_the_path_filter_or_the_string_literal_parse() -> None:
    condition = parse_condition('$.items[?@.kind == "db"].note == "a<b>=c"')
    assert (condition.path, condition.op, condition.value) == (
        '$.items[?@.kind == "db"].note',
        "==",
        "a<b>=c",
    )
    assert parse_condition("$.a>=1").op == ">="
    assert parse_condition("$.a!=1").op == "!="


def test_a_bad_condition_in_the_targets_file_is_a_config_error_naming_the_target(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(
        '[[targets]]\nname = "api"\nurl = "http://127.0.0.1:1/health"\nconditions = ["$.q <> 3"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_targets_file(path, BASE)
    assert str(caught.value) == (
        f"MONITOR_TARGETS_FILE {path}: target 'api': conditions: '$.q <> 3' is invalid: "
        "the right-hand side is not a JSON literal (strings need double quotes)"
    )


def test_conditions_do_not_apply_to_a_tcp_target(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text('[[targets]]\nname = "db"\nurl = "tcp://127.0.0.1:5432"\nconditions = ["$.a == 1"]\n')
    with pytest.raises(ConfigError) as caught:
        load_targets_file(path, BASE)
    assert (
        str(caught.value)
        == f"MONITOR_TARGETS_FILE {path}: target 'db': conditions does not apply to a tcp target"
    )


def test_targets_with_the_same_conditions_are_equal_so_a_reload_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(
        '[[targets]]\nname = "api"\nurl = "http://127.0.0.1:1/health"\nconditions = ["$.a == [1, 2]"]\n'
    )
    assert load_targets_file(path, BASE) == load_targets_file(path, BASE)
