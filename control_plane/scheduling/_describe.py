"""Schedules in words, for the UI and the CLI: "every 15 minutes", "at 09:00 on weekdays (Europe/Paris)".

Common patterns get a sentence; anything this module cannot say well falls back to the expression itself,
because a precise expression beats a vague sentence. The time zone is appended in parentheses unless it is
UTC.
"""

from __future__ import annotations

import datetime as dt

from orch.control_plane.schemas.schedules import (
    DEFAULT_ANCHOR,
    CronSchedule,
    IntervalSchedule,
    RRuleSchedule,
    ScheduleSpec,
    cron_fields,
)

__all__ = ["describe"]

WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")  # cron numbering
MONTHS = ("", *(f"{dt.date(2001, month, 1):%B}" for month in range(1, 13)))  # English names, not the locale's
_RRULE_FREQ_WORDS = {
    0: ("yearly", "year"),
    1: ("monthly", "month"),
    2: ("weekly", "week"),
    3: ("daily", "day"),
    4: ("hourly", "hour"),
    5: ("every minute", "minute"),
    6: ("every second", "second"),
}
_MAX_LISTED_TIMES = 6


def describe(spec: ScheduleSpec) -> str:
    """The schedule in a short English phrase; the raw expression when no phrase fits."""
    if isinstance(spec, CronSchedule):
        text = _describe_cron(spec.cron, day_or=spec.day_or) or spec.cron
    elif isinstance(spec, IntervalSchedule):
        text = _describe_interval(spec)
    elif isinstance(spec, RRuleSchedule):
        text = _describe_rrule(spec.rrule, spec.timezone) or spec.rrule
    else:
        raise TypeError(f"not a schedule: {spec!r}")
    return text if spec.timezone == "UTC" else f"{text} ({spec.timezone})"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _plural(count: float, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count:g} {unit}s"


def _step(values: list[int], low: int, high: int) -> int | None:
    """N when ``values`` is exactly ``low, low+N, ...`` up to ``high`` (what ``*/N`` expands to)."""
    if len(values) < 2 or values[0] != low:
        return None
    step = values[1] - values[0]
    return step if values == list(range(low, high + 1, step)) else None


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _hhmm(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def _time_phrase(minutes: list[int] | None, hours: list[int] | None) -> tuple[str, bool] | None:
    """(phrase, is_fixed_times): fixed times take a day phrase such as "every day"; repetitions do not need
    one."""
    if minutes is None:
        every = "every minute"
    elif (step := _step(minutes, 0, 59)) is not None:
        every = _plural(step, "minute")
    else:
        every = ""
    if hours is None:
        if every:
            return every, False
        if minutes == [0]:
            return "every hour", False
        assert minutes is not None
        return f"every hour at minute {_join([str(m) for m in minutes])}", False
    hour_step = _step(hours, 0, 23)
    if every:
        hour_runs = _runs(hours)
        if len(hour_runs) == 1 and len(hours) > 1:
            first, last = hour_runs[0]
            return f"{every} from {_hhmm(first, 0)} to {_hhmm(last, 59)}", False
        if len(hours) == 1:
            return f"{every} from {_hhmm(hours[0], 0)} to {_hhmm(hours[0], 59)}", False
        return None
    assert minutes is not None
    if hour_step is not None and len(minutes) == 1:
        base = _plural(hour_step, "hour")
        return (base if minutes == [0] else f"{base} at minute {minutes[0]}"), False
    if len(hours) * len(minutes) <= _MAX_LISTED_TIMES:
        return "at " + _join([_hhmm(h, m) for h in hours for m in minutes]), True
    return None


def _weekday_phrase(weekdays: list[int]) -> str:
    if weekdays == [1, 2, 3, 4, 5]:
        return "on weekdays"
    if weekdays == [0, 6]:
        return "on weekends"
    if len(weekdays) == 1:
        return f"every {WEEKDAYS[weekdays[0]]}"
    runs = _runs(weekdays)
    if len(runs) == 1 and len(weekdays) >= 3:
        return f"{WEEKDAYS[runs[0][0]]} through {WEEKDAYS[runs[0][1]]}"
    return "on " + _join([WEEKDAYS[day] for day in weekdays])


def _describe_cron(expression: str, *, day_or: bool) -> str | None:
    minutes, hours, days, months, weekdays = cron_fields(expression)
    time_phrase = _time_phrase(minutes, hours)
    if time_phrase is None:
        return None
    phrase, fixed = time_phrase
    day_parts: list[str] = []
    month_words = _join([MONTHS[m] for m in months]) if months else ""
    if days is not None and months is not None and len(days) == 1 and len(months) == 1 and weekdays is None:
        day_parts.append(f"on {MONTHS[months[0]]} {days[0]}")
        month_words = ""
    elif days is not None:
        of = "of the month" if months else "of every month"
        dom = f"on the {_join([_ordinal(day) for day in days])} {of}"
        if weekdays is not None:
            link = "or" if day_or else "if it is"
            weekday_words = _join([WEEKDAYS[day] for day in weekdays])
            dom = f"{dom} {link} {'on ' if day_or else ''}{'a ' if not day_or else ''}{weekday_words}"
        day_parts.append(dom)
    elif weekdays is not None:
        day_parts.append(_weekday_phrase(weekdays))
    elif fixed and not months:
        day_parts.append("every day")
    if month_words:
        day_parts.append(f"in {month_words}")
    return " ".join([phrase, *day_parts])


def _describe_interval(spec: IntervalSchedule) -> str:
    seconds = spec.interval
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            text = _plural(seconds // size, unit)
            if unit == "day":
                # Whole days keep a wall-clock time: say which.
                anchor = spec.anchor_date or DEFAULT_ANCHOR
                if anchor.tzinfo is not None:
                    from orch.control_plane.scheduling.timetable import _zone

                    anchor = anchor.astimezone(_zone(spec.timezone))
                text += f" at {_hhmm(anchor.hour, anchor.minute)}"
            return text
    return _plural(seconds, "second")


def _describe_rrule(text: str, timezone: str) -> str | None:
    from orch.control_plane.scheduling._rrule import parse_rrule, rule_parts

    parsed = parse_rrule(text, timezone)
    if not parsed.is_simple:
        return None
    rule = rule_parts(parsed.rules[0])
    if rule.has_unusual_parts:
        return None
    adverb, unit = _RRULE_FREQ_WORDS[rule.freq]
    words = [adverb if rule.interval == 1 else _plural(rule.interval, unit)]
    day_names = [WEEKDAYS[(day + 1) % 7] for day in rule.byweekday]  # dateutil: 0 = Monday
    for day, n in rule.bynweekday:
        day_names.append(f"the {_ordinal(n) if n > 0 else 'last'} {WEEKDAYS[(day + 1) % 7]}")
    # Defaults dateutil derived from DTSTART (the weekday of a WEEKLY rule...) are only worth saying when written.
    if day_names and rule.original.get("byweekday"):
        words.append("on " + _join(day_names))
    month_days = [_ordinal(day) for day in rule.bymonthday] + ["last day" for _ in rule.bynmonthday]
    if month_days and rule.original.get("bymonthday"):
        words.append("on the " + _join(month_days))
    if rule.bymonth and rule.original.get("bymonth"):
        words.append("in " + _join([MONTHS[month] for month in rule.bymonth]))
    time_written = bool(rule.original.get("byhour") or rule.original.get("byminute") or parsed.explicit_dtstart)
    if rule.freq <= 3 and time_written:  # DAILY or longer: say at what time
        if len(rule.byhour) * len(rule.byminute) > _MAX_LISTED_TIMES:
            return None
        words.append("at " + _join([_hhmm(h, m) for h in rule.byhour for m in rule.byminute]))
    elif rule.freq == 4 and rule.original.get("byminute"):  # HOURLY
        words.append(f"at minute {_join([str(minute) for minute in rule.byminute])}")
    if rule.count:
        words.append(f"{rule.count} times" if rule.count > 1 else "once")
    if rule.until:
        words.append(f"until {rule.until:%Y-%m-%d %H:%M}")
    return " ".join(words)
