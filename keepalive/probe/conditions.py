"""JSON conditions on an HTTP target's body (SPEC section 14): ``$.queue.depth < 100``.

A condition is an RFC 9535 JSONPath (python-jsonpath in its strict RFC mode), one of
``== != < <= > >=``, and a JSON literal. Conditions are parsed once, when the targets file is
loaded, so a bad path, operator or literal is a config error naming the target, and a check
only evaluates compiled queries.

Semantics, chosen so a condition never passes by accident:
- the path must select at least one value (``got nothing`` otherwise), and every value it
  selects must satisfy the comparison (``$.workers[*].alive == true``: all of them);
- ``==`` and ``!=`` compare JSON values (``1 == 1.0``; ``true`` is not ``1``);
- ``< <= > >=`` compare numbers with numbers and strings with strings; anything else fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from jsonpath import JSONPathEnvironment, JSONPathError
from jsonpath.path import JSONPath

OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
MAX_CONDITION = 1000  # characters of one condition's text
MAX_SHOWN = 60  # characters of a value shown in a reason
# Values one condition may compare before giving up: a wildcard over a 1 MiB array is bounded.
MAX_NODES = 10_000

_ENV = JSONPathEnvironment(strict=True)


class ConditionError(ValueError):
    """A condition that cannot be parsed; the message is one line."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One parsed condition; equal to another when their texts are equal."""

    text: str
    path: str = field(compare=False)
    op: str = field(compare=False)
    value: Any = field(compare=False)
    query: JSONPath = field(compare=False, repr=False)

    def failure(self, document: Any, foreign: bool = False) -> str | None:
        """Why ``document`` fails this condition, or None when it holds. ``foreign``: the
        document came from another host after a redirect, so no value of it is shown."""
        got: list[Any] = []
        for index, match in enumerate(self.query.finditer(document)):
            if index >= MAX_NODES:
                break
            if not _holds(match.obj, self.op, self.value):
                if foreign:
                    return f"condition failed: {self.text}"
                return f"condition failed: {self.text} (got {_show(match.obj)})"
            got.append(match.obj)
        if not got:
            return f"condition failed: {self.text} (got nothing)"
        return None


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text = "".join(" " if ch < " " or "\x7f" <= ch <= "\x9f" else ch for ch in text)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _holds(got: Any, op: str, want: Any) -> bool:
    if op == "==":
        return _equal(got, want)
    if op == "!=":
        return not _equal(got, want)
    if _is_number(got) and _is_number(want):
        if isinstance(got, float) and math.isnan(got):
            return False
    elif not (isinstance(got, str) and isinstance(want, str)):
        return False
    if op == "<":
        return bool(got < want)
    if op == "<=":
        return bool(got <= want)
    if op == ">":
        return bool(got > want)
    return bool(got >= want)


def _literal(text: str) -> Any:
    """A JSON literal, or raises ValueError."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=no_constants)


def parse_condition(text: str) -> Condition:
    """Parse ``$.path OP literal``. Raises ConditionError with a one-line reason.

    The operator is looked for from the right, so a filter inside the path
    (``$.items[?@.kind == "db"].up == true``) and an operator inside a string literal
    (``$.note == "a<b"``) both parse: the split taken is the rightmost one whose right-hand
    side is a JSON literal and whose left-hand side is a JSONPath query.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("expected a string like '$.clients >= 1'")
    if len(text) > MAX_CONDITION:
        raise ConditionError(f"longer than {MAX_CONDITION} characters")
    stripped = text.strip()
    if not stripped.startswith("$"):
        raise ConditionError("must start with a JSONPath query ($...)")
    path_error: str | None = None
    seen_operator = False
    for at in range(len(stripped) - 1, 0, -1):
        op = next((o for o in OPERATORS if stripped.startswith(o, at)), None)
        if op is None:
            continue
        if len(op) == 1 and stripped[at - 1] in "<>=!":
            continue  # the second character of a two-character operator
        seen_operator = True
        try:
            value = _literal(stripped[at + len(op) :].strip())
        except ValueError:
            continue
        path = stripped[:at].strip()
        try:
            query = _ENV.compile(path)
        except (JSONPathError, RecursionError) as exc:
            path_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        if not isinstance(query, JSONPath):
            path_error = "a compound query is not allowed"
            continue
        return Condition(text=text, path=path, op=op, value=value, query=query)
    if path_error is not None:
        raise ConditionError(f"invalid JSONPath: {path_error}")
    if not seen_operator:
        raise ConditionError(f"no comparison operator (one of {' '.join(OPERATORS)})")
    raise ConditionError("the right-hand side is not a JSON literal (strings need double quotes)")


def conditions_failure(conditions: tuple[Condition, ...], document: Any, foreign: bool = False) -> str | None:
    """The first failing condition's reason, or None when all hold."""
    for condition in conditions:
        reason = condition.failure(document, foreign)
        if reason is not None:
            return reason
    return None
