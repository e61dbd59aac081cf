"""Parsing RFC 5545 recurrence rules into dateutil objects that yield *naive wall-clock* times.

The schema keeps the rule as the text the user wrote; evaluation needs dateutil objects. Both the schema
validator and the timetable parse through :func:`parse_rrule` (cached by text), so they cannot disagree on
what a rule means.

Every time is naive and read in the schedule's time zone: the rule describes wall-clock times, and turning
those into instants (with the DST rules) is the timetable's job. Zones written in the text
(``DTSTART;TZID=...``, a trailing ``Z``) are ignored here; the schema turned them into the schedule's
``timezone`` already.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
import zoneinfo
from dataclasses import dataclass

from dateutil import rrule as du

from orch.control_plane.schemas.schedules import DEFAULT_ANCHOR

__all__ = ["ParsedRRule", "RRuleError", "RuleParts", "parse_rrule", "rule_parts"]

FREQ_NAMES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY")


class RRuleError(ValueError):
    """The text is not a recurrence rule orch can evaluate; the message says why in one line."""


@dataclass(frozen=True)
class RuleParts:
    """The parts of one parsed RRULE, with dateutil's defaults (taken from DTSTART) filled in.

    dateutil has no public accessors for a parsed rule's parts; this is the one place that reads its private
    attributes, so an upgrade that renames them breaks here, loudly, and nowhere else.
    """

    freq: int  # dateutil.rrule.YEARLY (0) ... SECONDLY (6)
    interval: int
    count: int | None
    until: dt.datetime | None
    dtstart: dt.datetime
    bymonth: tuple[int, ...]
    bymonthday: tuple[int, ...]  # positive days
    bynmonthday: tuple[int, ...]  # negative days (-1 = last day)
    byweekday: tuple[int, ...]  # 0 = Monday, without an ordinal
    bynweekday: tuple[tuple[int, int], ...]  # (weekday, n): n-th weekday of the period (monthly/yearly)
    byhour: tuple[int, ...]
    byminute: tuple[int, ...]
    bysecond: tuple[int, ...]
    original: dict[str, object]  # the BYxxx parts the user wrote (no defaults)

    @property
    def has_unusual_parts(self) -> bool:
        """BYSETPOS, BYWEEKNO, BYYEARDAY, BYEASTER: rare, and beyond cron or plain words."""
        return any(self.original.get(key) for key in ("bysetpos", "byweekno", "byyearday", "byeaster"))


def _ints(value: object) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    assert isinstance(value, tuple | list | set | frozenset)
    return tuple(sorted(int(item) for item in value))


def rule_parts(rule: du.rrule) -> RuleParts:
    read = functools.partial(getattr, rule)
    nweekday = read("_bynweekday") or ()
    return RuleParts(
        freq=int(read("_freq")),
        interval=int(read("_interval")),
        count=read("_count"),
        until=read("_until"),
        dtstart=read("_dtstart"),
        bymonth=_ints(read("_bymonth")),
        bymonthday=_ints(read("_bymonthday")),
        bynmonthday=_ints(read("_bynmonthday")),
        byweekday=_ints(read("_byweekday")),
        bynweekday=tuple(sorted((int(day), int(n)) for day, n in nweekday)),
        byhour=_ints(read("_byhour")),
        byminute=_ints(read("_byminute")),
        bysecond=_ints(read("_bysecond")),
        original=dict(read("_original_rule")),
    )


@dataclass(frozen=True)
class ParsedRRule:
    """A parsed rule set: ``rules`` (RRULE lines), ``exrules``, ``rdates``, ``exdates``, all naive
    wall-clock."""

    rules: tuple[du.rrule, ...]
    exrules: tuple[du.rrule, ...]
    rdates: tuple[dt.datetime, ...]
    exdates: tuple[dt.datetime, ...]
    dtstart: dt.datetime
    explicit_dtstart: bool

    @property
    def sub_daily(self) -> bool:
        """Whether any rule repeats more often than daily (HOURLY, MINUTELY, SECONDLY): DST treats it as
        elapsed."""
        return any(rule_parts(rule).freq >= du.HOURLY for rule in self.rules)

    @property
    def is_simple(self) -> bool:
        """A single RRULE with nothing else: the only shape worth translating for other schedulers."""
        return len(self.rules) == 1 and not (self.exrules or self.rdates or self.exdates)

    def build(self, start_hint: dt.datetime | None = None) -> du.rruleset:
        """A fresh rule set; with ``start_hint``, rules are moved forward to begin near it (same occurrences).

        dateutil enumerates every occurrence from DTSTART; a minutely rule started in 2020 would walk millions
        of occurrences to reach today. Moving DTSTART forward by whole periods of the rule (``INTERVAL`` x
        frequency) keeps every default dateutil derives from DTSTART (second, minute, hour, weekday) and the
        rule's phase, so the occurrences after the hint are unchanged. Rules with COUNT are left alone (COUNT
        counts from DTSTART), and so are monthly and yearly rules (their periods are not fixed lengths, and
        they are short walks anyway).
        """
        result = du.rruleset()
        for rule in self.rules:
            result.rrule(_fast_forward(rule, start_hint))
        for rule in self.exrules:
            result.exrule(_fast_forward(rule, start_hint))
        for when in self.rdates:
            result.rdate(when)
        for when in self.exdates:
            result.exdate(when)
        return result


_PERIOD_SECONDS = {du.WEEKLY: 7 * 86400, du.DAILY: 86400, du.HOURLY: 3600, du.MINUTELY: 60, du.SECONDLY: 1}


def _fast_forward(rule: du.rrule, start_hint: dt.datetime | None) -> du.rrule:
    parts = rule_parts(rule)
    period = _PERIOD_SECONDS.get(parts.freq)
    if start_hint is None or period is None or parts.count is not None:
        return rule
    step = dt.timedelta(seconds=period * parts.interval)
    periods = (start_hint - parts.dtstart) // step - 1
    if periods <= 0:
        return rule
    return rule.replace(dtstart=parts.dtstart + periods * step)


_ZONED_LINE = re.compile(r"^(?P<name>DTSTART|RDATE|EXDATE)(?P<params>;[^:]*)?:(?P<values>.*)$", re.IGNORECASE)
_UNTIL_UTC = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)
_STAMP = "%Y%m%dT%H%M%S"


def _to_wall(value: str, source_zone: dt.tzinfo | None, zone: dt.tzinfo) -> str:
    """``value`` (``YYYYMMDD[THHMMSS][Z]``) as a naive wall-clock stamp in ``zone``."""
    if value.upper().endswith("Z"):
        value, source_zone = value[:-1], dt.UTC
    if source_zone is None or len(value) == 8:  # floating time, or a whole date: already wall-clock
        return value
    instant = dt.datetime.strptime(value, _STAMP).replace(tzinfo=source_zone)
    return instant.astimezone(zone).strftime(_STAMP)


def _wall_clock_text(source: str, zone: dt.tzinfo) -> str:
    """Rewrite every zoned time in the rule (TZID=..., a trailing Z) as a naive wall-clock time in ``zone``.

    RFC 5545 writes UNTIL in UTC when DTSTART has a zone, and EXDATE/RDATE may carry their own TZID; after this,
    dateutil sees naive times only and the timetable applies one DST rule to all of them.
    """
    lines = []
    for line in source.splitlines():
        match = _ZONED_LINE.match(line.strip())
        if match:
            params = [p for p in (match["params"] or "").split(";") if p]
            zone_names = [p.split("=", 1)[1] for p in params if p.upper().startswith("TZID=")]
            source_zone = zoneinfo.ZoneInfo(zone_names[0]) if zone_names else None
            kept = "".join(f";{p}" for p in params if not p.upper().startswith("TZID="))
            values = ",".join(_to_wall(v.strip(), source_zone, zone) for v in match["values"].split(","))
            line = f"{match['name']}{kept}:{values}"
        else:
            line = _UNTIL_UTC.sub(lambda m: "UNTIL=" + _to_wall(m[1] + "Z", None, zone), line)
        lines.append(line)
    return "\n".join(lines)


@functools.lru_cache(maxsize=512)
def parse_rrule(text: str, timezone: str = "UTC") -> ParsedRRule:
    """Parse ``text`` (``FREQ=...``, or lines such as ``DTSTART:...`` / ``RRULE:...`` / ``EXDATE:...``).

    ``timezone`` is the schedule's zone: times written with another zone (or in UTC) are moved to its wall clock.
    """
    source = text.replace("\\n", "\n").strip()
    if not source:
        raise RRuleError("rrule must not be empty; e.g. 'FREQ=DAILY;BYHOUR=9'")
    try:
        zone = dt.UTC if timezone == "UTC" else zoneinfo.ZoneInfo(timezone)
        source = _wall_clock_text(source, zone)
        parsed = du.rrulestr(source, dtstart=DEFAULT_ANCHOR, forceset=True, ignoretz=True, unfold=True)
    except (ValueError, TypeError, KeyError, IndexError, zoneinfo.ZoneInfoNotFoundError) as error:
        reason = str(error) or type(error).__name__
        raise RRuleError(f"invalid rrule {text!r}: {reason}") from None
    assert isinstance(parsed, du.rruleset)
    # dateutil keeps a set's parts in private lists (no public accessors); read them here only.
    private = vars(parsed)
    rules: tuple[du.rrule, ...] = tuple(private["_rrule"])
    rdates: tuple[dt.datetime, ...] = tuple(private["_rdate"])
    if not rules and not rdates:
        raise RRuleError(f"invalid rrule {text!r}: it has no RRULE or RDATE line")
    explicit = "DTSTART" in source.upper()
    dtstart = rule_parts(rules[0]).dtstart if rules else DEFAULT_ANCHOR
    for rule in rules:
        if rule_parts(rule).count == 0:
            raise RRuleError(f"rrule {text!r} never runs: COUNT=0")
        if _impossible_month_days(rule):
            raise RRuleError(f"rrule {text!r} never runs: BYMONTHDAY does not occur in the months of BYMONTH")
    return ParsedRRule(
        rules=rules,
        exrules=tuple(private["_exrule"]),
        rdates=rdates,
        exdates=tuple(private["_exdate"]),
        dtstart=dtstart,
        explicit_dtstart=explicit,
    )


def _impossible_month_days(rule: du.rrule) -> bool:
    # dateutil would search until the year 9999 for "FEB 30" (seconds for DAILY, minutes for MINUTELY): refuse
    # it.
    parts = rule_parts(rule)
    positive = parts.bymonthday
    if not positive or parts.bynmonthday:
        return False
    months = parts.bymonth or range(1, 13)
    longest = max(calendar.monthrange(2024, month)[1] for month in months)
    return min(positive) > longest
