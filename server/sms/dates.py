"""The SL's dates, read "very liberally", as the contract says they are written.

Callbacks carry `sent_at` and `send_message` takes `on` in many spellings (contract
NOTES.md and messaging.md): `16:30`, `Aug 31`, `7/31`, `2/9/2007`, `2007-02-09`,
`02-09-2007 12:30:44 AM`, `2007-09-02T00:30:44Z`, `2007-09-02T12:30:44-0500`,
`Wednesday, January 10, 2001`, the strict `10/12/2008 12:55AM —0500` and the relaxed
`Tuesday 9 1:15PM`. Client apps of this SL and their tests also send epoch seconds
(`1373614147`) and Ruby's `Time#to_s` (`Fri Jul 12 14:29:07 +0700 2013`, the year after
the zone; `... UTC 2013`, and C's `ctime` without a zone, read alike). `parse_sl_date`
gives an ISO 8601 string in UTC, or None.

Rules (decided here; the contract gives examples, not a grammar):
- Numeric dates are month first (`2/9/2007` is February 9), as in the SL's examples.
- A time without a zone is UTC, as the docs say for `on`. A zone is a numeric offset after
  a space (`-0500`, `+05:30`, any dash: `—0500`) or a US abbreviation (`EST`, `PDT`, ...).
- A date without a time is midnight.
- A text of digits only is epoch seconds when it has 9 or 10 digits (an optional
  fraction after a dot): 1973-03-03 to 2286-11-20, the range any SL's clock is in. Eight
  digits are ISO 8601's basic date (`20070209`). Fewer are not a date: `2007` is a year,
  `9` a day, neither an instant, and `1630` is not read as a clock (`16:30` is). Longer
  runs (milliseconds, a phone number in the wrong field) are not a date either.
- Missing parts come from `now`. `16:30` is today, `Aug 31` is this year. A weekday
  (`Tuesday 1:15PM`) is the nearest Tuesday, and `Tuesday 9` is the nearest Tuesday the
  9th. For a schedule (`future=True`) "nearest" means the next one at or after `now`, and
  `16:30` or `Aug 31` already past means tomorrow or next year. For `sent_at` it means the
  latest one on or before today. A time-only `sent_at` is today even when it is a few
  seconds ahead (clocks differ).

The text is split into date, time and zone by a few patterns (a year written last is
moved before the time first), and the date part is read by a few more. It never tries every combination of formats: a held callback's `sent_at`
is read on the gateway's path, and an unreadable one must cost little.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

ZONE_HOURS = {"UTC": 0, "GMT": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
              "MST": -7, "MDT": -6, "PST": -8, "PDT": -7}

_DASHES = str.maketrans({"—": "-", "–": "-", "−": "-", "‐": "-", "‒": "-"})
_ZONE = re.compile(
    r"\s+(?:(?P<sign>[+-])(?P<hh>\d{2}):?(?P<mm>\d{2})|(?P<abbr>" + "|".join(ZONE_HOURS) + r"))$",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"(?:^|(?<=\s))(?P<h>\d{1,2})(?::(?P<m>\d{2})(?::(?P<s>\d{2}))?)?\s*(?P<ampm>[ap])\.?(?:m\.?)?$|"
    r"(?:^|(?<=\s))(?P<h24>\d{1,2}):(?P<m24>\d{2})(?::(?P<s24>\d{2}))?$",
    re.IGNORECASE,
)
_EPOCH = re.compile(r"\d{9,10}(?:\.\d{1,9})?")
_YEAR_LAST = re.compile(  # Ruby's Time#to_s and C's ctime put the year last, after time and zone
    r"(?P<date>.*[A-Za-z].*?)\s+(?P<time>\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:\s+(?:[+-]\d{2}:?\d{2}|" + "|".join(ZONE_HOURS) + r"))?)\s+(?P<year>\d{4})",
    re.IGNORECASE,
)
_NUMERIC = re.compile(r"(?P<a>\d{1,4})[/-](?P<b>\d{1,2})(?:[/-](?P<c>\d{1,4}))?")
_WORDY = re.compile(r"[A-Za-z0-9 ,.]+")
_TOKEN = re.compile(r"[A-Za-z]+|\d+")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def parse_sl_date(raw: str, *, now: datetime | None = None, future: bool = False) -> str | None:
    """`raw` as an ISO 8601 string in UTC, or None when it is not a date (module docstring)."""
    try:
        return _parse(raw, now, future)
    except (ValueError, OverflowError):  # an offset of 29 hours, year 1 moved west, year 10000
        return None


def _parse(raw: str, now: datetime | None, future: bool) -> str | None:
    text = " ".join(raw.translate(_DASHES).split())
    if not text or len(text) > 80:
        return None
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    if _EPOCH.fullmatch(text) is not None:
        return datetime.fromtimestamp(float(text), timezone.utc).isoformat()
    try:
        return _as_utc(datetime.fromisoformat(text)).isoformat()
    except ValueError:
        pass
    if (match := _YEAR_LAST.fullmatch(text)) is not None:  # `Fri Jul 12 2013 14:29:07 +0700`
        text = f"{match['date']} {match['year']} {match['time']}"
    if "," in text and text[:3].isalpha():  # RFC 2822: `Tue, 09 Feb 2007 12:30:44 +0000`
        try:
            return _as_utc(parsedate_to_datetime(text)).isoformat()
        except (TypeError, ValueError, IndexError):
            pass
    zone = timezone.utc
    if (match := _ZONE.search(text)) is not None:
        if match["abbr"]:
            zone = timezone(timedelta(hours=ZONE_HOURS[match["abbr"].upper()]))
        else:
            minutes = int(match["hh"]) * 60 + int(match["mm"])
            zone = timezone(timedelta(minutes=-minutes if match["sign"] == "-" else minutes))
        text = text[: match.start()]
    clock: tuple[int, int, int] | None = None
    if (match := _TIME.search(text)) is not None:
        clock = _clock(match)
        if clock is None:
            return None
        text = text[: match.start()].rstrip(" ,")
    elif not text:
        return None
    local_now = now.astimezone(zone)
    found = _day(text, local_now.date(), future)
    if found is None:
        return None
    day, missing = found
    hour, minute, second = clock or (0, 0, 0)
    when = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)
    if future and when < local_now and missing:
        # the part taken from `now` moves on: tomorrow, next year, the next such weekday
        if missing == "day":
            later = _day(text, local_now.date() + timedelta(days=1), future)
            day = later[0] if later is not None else day
        else:
            try:
                day = day.replace(year=day.year + 1)
            except ValueError:  # February 29
                pass
        when = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)
    return when.astimezone(timezone.utc).isoformat()


def _clock(match: re.Match[str]) -> tuple[int, int, int] | None:
    if match["ampm"]:
        hour, minute, second = int(match["h"]), int(match["m"] or 0), int(match["s"] or 0)
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match["ampm"].lower() == "p" else 0)
    else:
        hour, minute, second = int(match["h24"]), int(match["m24"]), int(match["s24"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour, minute, second


def _day(text: str, today: date, future: bool) -> tuple[date, str] | None:
    """The date part and which part came from `today` ('day', 'year' or ''): '' is today;
    `m/d[/y]`, `y-m-d`; words (`Wednesday, January 10, 2001`, `Aug 31`, `9th May`) and
    weekdays (`Tuesday`, `Tuesday 9`: the nearest Tuesday the 9th). A date that does not
    exist (February 30) raises ValueError, which `parse_sl_date` answers with None."""
    if not text:
        return today, "day"
    if (match := _NUMERIC.fullmatch(text)) is not None:
        a, b, c = match["a"], match["b"], match["c"]
        if len(a) == 4:  # 2007/02/09
            return (date(int(a), int(b), int(c)), "") if c and len(c) <= 2 else None
        if c is None:
            return date(today.year, int(a), int(b)), "year"
        return date(int(c) + (2000 if len(c) <= 2 else 0), int(a), int(b)), ""
    if _WORDY.fullmatch(text) is None:
        return None
    weekday = month = day = year = None
    previous = ""
    for token in _TOKEN.findall(text):
        if token.isdigit():
            if len(token) == 4 and year is None:
                year = int(token)
            elif len(token) <= 2 and day is None:
                day = int(token)
            else:
                return None
        elif previous.isdigit() and token.lower() in ("st", "nd", "rd", "th"):
            pass
        elif (number := _named(token, _MONTHS)) is not None and month is None:
            month = number + 1
        elif (number := _named(token, _WEEKDAYS)) is not None and weekday is None:
            weekday = number
        else:
            return None
        previous = token
    if month is not None and day is not None:
        return date(year if year is not None else today.year, month, day), "" if year else "year"
    if weekday is not None and month is None and year is None:
        found = _weekday(weekday, day, today, future)
        return (found, "day") if found is not None else None
    return None


def _named(word: str, names: tuple[str, ...]) -> int | None:
    """The index of the name that `word` spells or starts (3 letters at least: `Tue`)."""
    word = word.lower()
    if len(word) >= 3:
        for number, name in enumerate(names):
            if name.startswith(word):
                return number
    return None


def _weekday(weekday: int, day_of_month: int | None, today: date, future: bool) -> date | None:
    """The nearest such weekday from `today` on (or back), that is the `day_of_month`th if given."""
    if day_of_month is not None and not 1 <= day_of_month <= 31:
        return None
    step = timedelta(days=1 if future else -1)
    day = today
    for _ in range(3 * 366):  # each weekday falls on each day of the month within 14 months
        if day.weekday() == weekday and (day_of_month is None or day.day == day_of_month):
            return day
        day += step
    return None  # pragma: no cover - unreachable for a weekday and a day of 1-31


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
