"""Typed, problem-recording access to the tables of policies.toml: a wrong value
becomes a problem (place and sentence) and validation goes on, so every problem is
reported in one pass."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from orchestrator.policies.values import NAME, Conv, Invalid, kind_of

T = TypeVar("T")


class Table:
    """Typed, problem-recording access to one TOML table.

    A value of the wrong shape becomes a problem and the caller gets None (or its
    default) so validation can go on and report everything in one pass.
    """

    def __init__(
        self,
        raw: object,
        place: str,
        problems: list[str],
        known: Iterable[str] | None = None,
    ) -> None:
        self.place = place
        self.problems = problems
        self.ok = isinstance(raw, dict)
        self.data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if not self.ok:
            self.report("", f"expected a table, got {kind_of(raw)}")
        elif known is not None:
            self.check_keys(known)

    def at(self, key: str) -> str:
        return f"{self.place}.{key}" if self.place else key

    def report(self, key: str, message: str) -> None:
        place = self.at(key) if key else self.place
        self.problems.append(f"{place or 'top level'}: {message}")

    def check_keys(self, known: Iterable[str]) -> None:
        """Unknown keys are errors (a typo must not silently disable a setting)."""
        choices = list(known)
        for key in self.data:
            if key not in choices:
                close = difflib.get_close_matches(key, choices, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.report("", f"unknown key '{key}'{hint}")

    def get(self, key: str, conv: Conv[T]) -> T | None:
        """The converted value, or None when absent or invalid (then a problem is recorded)."""
        if key not in self.data:
            return None
        try:
            return conv(self.data[key])
        except Invalid as exc:
            for suffix, message in exc.issues:
                self.problems.append(f"{self.at(key)}{suffix}: {message}")
            return None

    def get_or(self, key: str, conv: Conv[T], default: T) -> T:
        value = self.get(key, conv)
        return default if value is None else value

    def need(self, key: str, conv: Conv[T]) -> T | None:
        if key not in self.data:
            self.report("", f"missing required key '{key}'")
        return self.get(key, conv)

    def table(self, key: str, known: Iterable[str] | None = None) -> Table | None:
        """The sub-table at `key`; None when absent or not a table (the latter is reported)."""
        if key not in self.data:
            return None
        table = Table(self.data[key], self.at(key), self.problems, known)
        return table if table.ok else None


def named_tables(top: Table, key: str, build: Callable[[Table, str], T | None]) -> dict[str, T]:
    """Read a table of named tables ([targets.x], [policies.y]), checking each name."""
    group = top.table(key)
    if group is None:
        return {}
    result: dict[str, T] = {}
    for name, raw in group.data.items():
        entry = Table(raw, group.at(name), group.problems)
        if not NAME.fullmatch(name):
            entry.report("", "name must start with a letter or digit and hold only A-Z a-z 0-9 _ -")
        if entry.ok and (built := build(entry, name)) is not None:
            result[name] = built
    return result
