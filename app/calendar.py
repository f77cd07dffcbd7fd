"""The one calendar of the service: Europe/Paris instants, French working days, month
arithmetic. Every delay of the procedure is computed here.

- Due instants: a deadline falling due on a day fires at the office hour (08:00 by
  default) of that day in Europe/Paris, DST included.
- Working days (jours ouvrés, C-35, L-7): Monday–Friday minus French public holidays from
  the ``holidays`` package, per zone: metropole, Alsace-Moselle (subdivisions ``57`` and
  ``6AE``, which add Good Friday and 26 December), overseas departments (abolition of
  slavery day). Whit Monday, often a worked "journée de solidarité", is configurable.
- Months: same day number, or the month's last day when there is none (31 January +
  1 month = 28 or 29 February), as L-6 counts them.
"""

from __future__ import annotations

import calendar as _calendar
import enum
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

PARIS = ZoneInfo("Europe/Paris")


class Zone(str, enum.Enum):
    """Calendar zone of a property; the value is the `holidays` subdivision."""

    metropole = ""
    moselle = "57"
    alsace = "6AE"  # Bas-Rhin and Haut-Rhin (67, 68)
    guadeloupe = "971"
    martinique = "972"
    guyane = "973"
    reunion = "974"
    mayotte = "976"


def add_months(day: date, months: int) -> date:
    """Same day number ``months`` later (or earlier), clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def at_office_hour(day: date, office_hour: time) -> datetime:
    """The instant ``day`` at the office hour in Europe/Paris (aware; DST handled by zoneinfo)."""
    return datetime.combine(day, office_hour, tzinfo=PARIS)


def paris_date(moment: datetime) -> date:
    return moment.astimezone(PARIS).date()


@lru_cache(maxsize=256)
def _holidays(year: int, zone: Zone, whit_monday: bool) -> dict[date, str]:
    found = holidays.France(years=year, subdiv=zone.value or None, language="fr")
    days = dict(found.items())
    if not whit_monday:
        days = {d: name for d, name in days.items() if "Pentecôte" not in name}
    return days


def public_holiday(day: date, zone: Zone = Zone.metropole, whit_monday: bool = True) -> str | None:
    """The holiday's French name, or None."""
    return _holidays(day.year, zone, whit_monday).get(day)


def is_working_day(day: date, zone: Zone = Zone.metropole, whit_monday: bool = True) -> bool:
    return day.weekday() < 5 and public_holiday(day, zone, whit_monday) is None


def add_working_days(start: date, days: int, zone: Zone = Zone.metropole, whit_monday: bool = True) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself does not count)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current, zone, whit_monday):
            remaining -= 1
    return current


def next_working_day(day: date, zone: Zone = Zone.metropole, whit_monday: bool = True) -> date:
    """``day`` itself when it is a working day, else the next one."""
    while not is_working_day(day, zone, whit_monday):
        day += timedelta(days=1)
    return day
