"""PromQL expressions of the dashboards and rules, and the signals inside alert
expressions (what the live test requires data for)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.paths import dashboard_files, rule_files


@dataclass(frozen=True)
class Expression:
    id: str  # stable, readable: used as the pytest id
    expr: str
    kind: str  # "panel", "record" or "alert"
    record: str | None = None  # the series a recording rule writes


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out += _panels(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def dashboard_expressions(path: Path) -> list[Expression]:
    board = json.loads(path.read_text())
    found = []
    for panel in _panels(board["panels"]):
        for target in panel.get("targets", []):
            if "expr" in target:
                found.append(Expression(f"{board['uid']}/{panel['title']}/{target['refId']}", target["expr"], "panel"))
    return found


def rule_expressions(path: Path) -> list[Expression]:
    doc = yaml.safe_load(path.read_text())
    found = []
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                found.append(Expression(f"alert/{rule['alert']}", rule["expr"], "alert"))
            else:
                found.append(Expression(f"record/{rule['record']}", rule["expr"], "record", rule["record"]))
    return found


def all_dashboard_expressions() -> list[Expression]:
    return [e for path in dashboard_files() for e in dashboard_expressions(path)]


def all_rule_expressions() -> list[Expression]:
    return [e for path in rule_files() for e in rule_expressions(path)]


# ------------------------------------------------------------------ signals

_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_SET_OPERATORS = ("and", "or", "unless")
_MODIFIERS = ("bool", "on", "ignoring", "group_left", "group_right")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(Inf|NaN)$", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_:]*")


def _scan(expr: str) -> list[tuple[int, int]]:
    """(start, end) of every top-level comparison or set operator, with the
    modifiers that follow it (bool, on(...), ignoring(...), group_left(...))."""
    spans: list[tuple[int, int]] = []
    depth = 0
    i = 0
    n = len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            end = i + 1
            while end < n and expr[end] != c:
                end += 2 if expr[end] == "\\" else 1
            i = end + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            op_end = None
            for op in _COMPARISONS:
                if expr.startswith(op, i):
                    op_end = i + len(op)
                    break
            if op_end is None and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_:")):
                word = _WORD.match(expr, i)
                if word and word.group() in _SET_OPERATORS:
                    op_end = word.end()
            if op_end is not None:
                spans.append((i, _skip_modifiers(expr, op_end)))
                i = spans[-1][1]
                continue
        i += 1
    return spans


def _skip_modifiers(expr: str, i: int) -> int:
    while True:
        j = i
        while j < len(expr) and expr[j].isspace():
            j += 1
        word = _WORD.match(expr, j)
        if not word or word.group() not in _MODIFIERS:
            return i
        j = word.end()
        while j < len(expr) and expr[j].isspace():
            j += 1
        if j < len(expr) and expr[j] == "(":
            j = expr.index(")", j) + 1
        i = j


def _enclosed(expr: str, opening: int) -> bool:
    """Whether the bracket at ``opening`` closes at the very end of ``expr``."""
    depth = 0
    for i in range(opening, len(expr)):
        if expr[i] == "(":
            depth += 1
        elif expr[i] == ")":
            depth -= 1
            if depth == 0:
                return i == len(expr) - 1
    return False


def signals(expr: str) -> list[str]:
    """The expressions an alert compares or combines, which must have data
    while the system is healthy even though the alert itself is empty.

    The expression is split at its top-level comparisons and set operators
    (``and``, ``or``, ``unless``); parenthesised operands are split in turn;
    number literals (thresholds) are dropped; ``absent(x)`` (empty when all is
    well, by design) contributes ``x``. An expression with no such operator is
    its own signal.
    """
    expr = expr.strip()
    if expr.startswith("(") and _enclosed(expr, 0):
        return signals(expr[1:-1])
    absent = re.match(r"absent\s*\(", expr)
    if absent and _enclosed(expr, absent.end() - 1):
        return signals(expr[absent.end() : -1])
    spans = _scan(expr)
    if not spans:
        return [] if _NUMBER.match(expr) else [expr]
    out: list[str] = []
    start = 0
    for op_start, op_end in [*spans, (len(expr), len(expr))]:
        out += signals(expr[start:op_start])
        start = op_end
    return out
