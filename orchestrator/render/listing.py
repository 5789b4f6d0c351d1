"""`plan` and `snapshots` as text."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from orchestrator.render import _cell, dump_json, table


def render_plan(runs: Sequence[Any]) -> str:
    """The plan's table (due, policy, target, level, why) as `table` would draw it."""
    if not runs:
        return "nothing scheduled in this window"
    return "\n".join(plan_lines(runs))


def plan_lines(runs: Sequence[Any]) -> Iterator[str]:
    """The lines of render_plan's table, one at a time, for a plan of hundreds of
    thousands of runs: two passes (the column widths, then the lines), each due time and
    each reason formatted once, and nothing held but those, so the caller can write the
    table in pieces instead of building 46 MB of text twice."""
    dues: dict[tuple[datetime, int], str] = {}
    whys: dict[tuple[str, str], str] = {}
    w0, w1, w2, w3 = len("DUE"), len("POLICY"), len("TARGET"), len("LEVEL")
    for p in runs:
        due = p.slot.due
        due_text = dues.get((due, due.fold))
        if due_text is None:
            due_text = dues[due, due.fold] = _cell(due)
            w0 = max(w0, len(due_text))
        w1 = max(w1, len(p.slot.policy))
        w2 = max(w2, len(p.target))
        w3 = max(w3, len(p.decision.level))
    yield f"{'DUE':<{w0}}  {'POLICY':<{w1}}  {'TARGET':<{w2}}  {'LEVEL':<{w3}}  WHY"
    for p in runs:
        slot, decision = p.slot, p.decision
        why_key = (slot.reason, decision.reason)
        why = whys.get(why_key)
        if why is None:
            why = whys[why_key] = f"{slot.reason}; {decision.reason}"
        due_text, level = dues[slot.due, slot.due.fold], decision.level
        line = f"{due_text:<{w0}}  {slot.policy:<{w1}}  {p.target:<{w2}}  {level:<{w3}}  {why}"
        yield line.rstrip()


def plan_table_pieces(parts: Sequence[Any], tz: str) -> Iterator[str]:
    """render_plan's table of a plan given as engine/plan.py's PolicyPlan parts, in
    pieces (the text of a month of 10,000 policies is 46 MB), each ending in a newline.

    No object per run: each (policy, target) is padded once, each (slot merge, level
    decision) pair becomes its LEVEL and WHY cells once, and a run is one concatenation
    appended to the list of its due instant; every line of one instant is then joined at
    once behind its DUE cell (formatted once per instant)."""
    from zoneinfo import ZoneInfo

    if not parts:
        yield "nothing scheduled in this window\n"
        return
    w1 = max(len("POLICY"), *(len(part.policy) for part in parts))
    w2 = max(len("TARGET"), *(len(t) for part in parts for t, _ in part.targets))
    # Decisions by id (the parts hold them alive while this runs, and share most: one
    # pass per target to find the few new ones); merges are found when first needed.
    decisions: dict[int, Any] = {}
    for part in parts:
        for _, made in part.targets:
            if not set(map(id, made)) <= decisions.keys():
                decisions.update((id(d), d) for d in made)
    w3 = max(len("LEVEL"), *(len(d.level) for d in decisions.values()))
    cells = _Cells(decisions, w3)  # (id of merge, id of decision): LEVEL and WHY
    by_due: defaultdict[datetime, list[str]] = defaultdict(list)
    append, cell = list.append, cells.__getitem__
    # Per run only C-level iteration (map, zip): 330,000 runs in a few tenths of a second.
    for part in parts:
        cells.rows = part.rows
        lists = list(map(by_due.__getitem__, map(_DUE, part.rows)))
        ids = list(map(id, map(_MERGE, part.rows)))
        for target, made in part.targets:
            head = f"  {part.policy:<{w1}}  {target:<{w2}}  "
            texts = map(head.__add__, map(cell, zip(ids, map(id, made), strict=True)))
            deque(map(append, lists, texts), maxlen=0)  # each run onto its instant's list
    zone = ZoneInfo(tz)
    dues = sorted(by_due)
    texts = [_cell(due.astimezone(zone)) for due in dues]
    w0 = max(len("DUE"), *(len(text) for text in texts))
    yield f"{'DUE':<{w0}}  {'POLICY':<{w1}}  {'TARGET':<{w2}}  {'LEVEL':<{w3}}  WHY\n"
    for due, text in zip(dues, texts, strict=True):  # a piece per instant
        lead = f"{text:<{w0}}"
        yield lead + ("\n" + lead).join(by_due.pop(due)) + "\n"


_DUE, _MERGE = itemgetter(0), itemgetter(2)  # of a slot row (policies/schedule.py:SlotRow)


class _Cells(dict[tuple[int, int], str]):
    """The LEVEL and WHY cells of (id of merge, id of decision), each made when first
    asked; the merge is one of the current part's `rows`."""

    def __init__(self, decisions: dict[int, Any], width: int) -> None:
        super().__init__()
        self.decisions, self.width = decisions, width
        self.rows: Sequence[Any] = ()

    def __missing__(self, key: tuple[int, int]) -> str:
        merge = next(row[2] for row in self.rows if id(row[2]) == key[0])
        decision = self.decisions[key[1]]
        cell = f"{decision.level:<{self.width}}  {merge[2]}; {decision.reason}".rstrip()
        self[key] = cell
        return cell


def plan_json_parts_pieces(
    begin: datetime, days: int, parts: Sequence[Any], tz: str
) -> Iterator[str]:
    """plan_json_pieces' text from engine/plan.py's PolicyPlan parts, with no object per
    run: each run's line is put together from JSON text made once per (policy, target),
    per (slot merge, level decision), per instant and per nominal time (json's own string
    encoder, so every escape is json.dumps'), then ordered by instant as for the table."""
    from json.encoder import encode_basestring_ascii as enc
    from zoneinfo import ZoneInfo

    head = dump_json("plan", {"from": begin, "days": days, "runs": []})
    assert head.endswith('"runs": []\n}')
    if not parts:
        yield head
        return
    yield head[: -len("[]\n}")] + "[\n    "
    zone = ZoneInfo(tz)
    times: dict[datetime, str] = {}  # nominal time: the key's time text, escaped
    cells: dict[tuple[int, int], tuple[str, str]] = {}
    by_due: defaultdict[datetime, list[str]] = defaultdict(list)
    for part in parts:
        lists = list(map(by_due.__getitem__, map(_DUE, part.rows)))
        key = enc(part.policy + "@")[:-1]
        slots = []
        for row in part.rows:
            text = times.get(row[1])
            if text is None:
                text = times[row[1]] = enc(row[1].isoformat(timespec="minutes"))[1:]
            slots.append(key + text)
        for target, made in part.targets:
            who = f'"policy": {enc(part.policy)}, "target": {enc(target)}, "level": '
            for row, decision, slot, found in zip(part.rows, made, slots, lists, strict=True):
                merge = row[2]
                pair = cells.get((id(merge), id(decision)))
                if pair is None:
                    pair = cells[id(merge), id(decision)] = (
                        f'{enc(decision.level)}, "scheduled_level": {enc(merge[0])}, '
                        f'"schedules": [{", ".join(map(enc, merge[1]))}], "slot": ',
                        f', "why": {enc(f"{merge[2]}; {decision.reason}")}}}',
                    )
                found.append(who + pair[0] + slot + pair[1])
    first = True
    for due in sorted(by_due):
        lead = '{"due": ' + enc(due.astimezone(zone).isoformat()) + ", "
        yield ("" if first else ",\n    ") + lead + (",\n    " + lead).join(by_due.pop(due))
        first = False
    yield "\n  ]\n}"


def plan_json(begin: datetime, days: int, runs: Sequence[Any]) -> str:
    """`plan --json`: the document `dump_json` would give (schema, command, from, days,
    runs), with one run a line."""
    return "".join(plan_json_pieces(begin, days, runs))


def plan_json_pieces(begin: datetime, days: int, runs: Sequence[Any]) -> Iterator[str]:
    """plan_json in pieces of up to 10,000 runs, each piece encoded by json's C encoder
    (indent=2 takes the pure-Python one: seconds for a month of 10,000 policies), so the
    caller can write a plan of hundreds of thousands of runs without holding it twice."""
    import json

    head = dump_json("plan", {"from": begin, "days": days, "runs": []})
    assert head.endswith('"runs": []\n}')
    if not runs:
        yield head
        return
    yield head[: -len("[]\n}")] + "[\n    "
    dues: dict[tuple[datetime, int], str] = {}
    for at in range(0, len(runs), 10_000):
        rows = []
        for p in runs[at : at + 10_000]:
            slot, decision = p.slot, p.decision
            due = dues.get((slot.due, slot.due.fold))
            if due is None:
                due = dues[slot.due, slot.due.fold] = slot.due.isoformat()
            rows.append(
                {
                    "due": due,
                    "policy": slot.policy,
                    "target": p.target,
                    "level": decision.level,
                    "scheduled_level": slot.level,
                    "schedules": list(slot.schedules),
                    "slot": slot.key,
                    "why": f"{slot.reason}; {decision.reason}",
                }
            )
        # A quote inside a string is escaped, so `}, {"due"` only ever joins two runs.
        body = json.dumps(rows)[1:-1].replace('}, {"due"', '},\n    {"due"')
        yield (",\n    " if at else "") + body
    yield "\n  ]\n}"


def render_snapshots(listings: list[Any]) -> str:
    out = []
    for lst in listings:
        out.append(f"target {lst.target}:" + (f" {lst.error}" if lst.error else ""))
        if lst.snapshots:
            out.append(
                table(
                    ["id", "time", "policy", "level", "parent", "paths"],
                    [
                        [
                            s.short_id,
                            s.time,
                            s.tag("policy"),
                            s.tag("level"),
                            s.parent[:8] if s.parent else None,
                            ", ".join(s.paths),
                        ]
                        for s in lst.snapshots
                    ],
                )
            )
        elif not lst.error:
            out.append("  no snapshots")
    return "\n".join(out)
