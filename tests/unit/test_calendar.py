"""The calendar: holidays (fixed and Easter-based), Alsace-Moselle, overseas, weekends,
working days, month ends, leap years, and DST in Europe/Paris."""

from datetime import UTC, date, datetime, time

import pytest

from app.calendar import Zone, add_months, add_working_days, at_office_hour, is_working_day, next_working_day
from app.calendar import paris_date, public_holiday

EIGHT = time(8, 0)


@pytest.mark.parametrize("day, name", [
    (date(2027, 1, 1), "Jour de l'an"), (date(2027, 5, 1), "Fête du Travail"), (date(2027, 5, 8), "Fête de la Victoire"),
    (date(2027, 7, 14), "Fête nationale"), (date(2027, 8, 15), "Assomption"), (date(2027, 11, 1), "Toussaint"),
    (date(2027, 11, 11), "Armistice"), (date(2027, 12, 25), "Noël"),
])
def test_fixed_national_holidays(day, name):
    assert public_holiday(day) == name and not is_working_day(day)


@pytest.mark.parametrize("year, easter_monday, ascension, whit_monday", [
    (2025, date(2025, 4, 21), date(2025, 5, 29), date(2025, 6, 9)),
    (2026, date(2026, 4, 6), date(2026, 5, 14), date(2026, 5, 25)),
    (2027, date(2027, 3, 29), date(2027, 5, 6), date(2027, 5, 17)),
    (2028, date(2028, 4, 17), date(2028, 5, 25), date(2028, 6, 5)),
])
def test_easter_based_holidays_move_with_the_years(year, easter_monday, ascension, whit_monday):
    assert public_holiday(easter_monday) == "Lundi de Pâques"
    assert public_holiday(ascension) == "Ascension"
    assert public_holiday(whit_monday) == "Lundi de Pentecôte"


def test_whit_monday_can_be_a_worked_solidarity_day():
    assert not is_working_day(date(2027, 5, 17))
    assert is_working_day(date(2027, 5, 17), whit_monday=False)


@pytest.mark.parametrize("zone", [Zone.moselle, Zone.alsace])
def test_alsace_moselle_adds_good_friday_and_26_december(zone):
    assert is_working_day(date(2027, 3, 26)) and not is_working_day(date(2027, 3, 26), zone)  # Good Friday
    assert is_working_day(date(2025, 12, 26)) and not is_working_day(date(2025, 12, 26), zone)  # a Friday
    # 5 working days after Thursday 25 March 2027: metropole skips Easter Monday; Alsace also Good Friday.
    assert add_working_days(date(2027, 3, 25), 5) == date(2027, 4, 2)
    assert add_working_days(date(2027, 3, 25), 5, zone) == date(2027, 4, 5)


def test_overseas_departments_add_their_abolition_day():
    assert public_holiday(date(2027, 12, 20), Zone.reunion) is not None
    assert is_working_day(date(2027, 12, 20)) and not is_working_day(date(2027, 12, 20), Zone.reunion)
    assert public_holiday(date(2027, 5, 22), Zone.martinique) is not None


def test_weekends_and_next_working_day():
    assert not is_working_day(date(2027, 1, 2)) and not is_working_day(date(2027, 1, 3))
    assert next_working_day(date(2027, 1, 1)) == date(2027, 1, 4)  # Friday holiday, then the weekend
    assert next_working_day(date(2027, 1, 4)) == date(2027, 1, 4)


@pytest.mark.parametrize("start, days, end", [
    (date(2026, 12, 24), 8, date(2027, 1, 7)),  # Christmas and New Year skipped
    (date(2027, 7, 9), 8, date(2027, 7, 22)),  # 14 July (a Wednesday) skipped
    (date(2027, 1, 8), 1, date(2027, 1, 11)),  # Friday → Monday; the start day does not count
    (date(2027, 1, 9), 1, date(2027, 1, 11)),  # Saturday → Monday
])
def test_add_working_days(start, days, end):
    assert add_working_days(start, days) == end


@pytest.mark.parametrize("start, months, end", [
    (date(2027, 1, 31), 1, date(2027, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
    (date(2027, 3, 31), 1, date(2027, 4, 30)),
    (date(2027, 1, 31), 2, date(2027, 3, 31)),
    (date(2027, 12, 15), 1, date(2028, 1, 15)),
    (date(2028, 2, 29), 12, date(2029, 2, 28)),
    (date(2027, 3, 31), -1, date(2027, 2, 28)),
])
def test_months_clamp_to_the_month_end(start, months, end):
    assert add_months(start, months) == end


def test_office_hour_in_paris_across_dst():
    winter = at_office_hour(date(2027, 3, 27), EIGHT)  # Saturday before the spring switch: UTC+1
    summer = at_office_hour(date(2027, 3, 28), EIGHT)  # switch day, 08:00 is already UTC+2
    autumn = at_office_hour(date(2027, 10, 31), EIGHT)  # back to UTC+1
    assert winter.astimezone(UTC) == datetime(2027, 3, 27, 7, 0, tzinfo=UTC)
    assert summer.astimezone(UTC) == datetime(2027, 3, 28, 6, 0, tzinfo=UTC)
    assert autumn.astimezone(UTC) == datetime(2027, 10, 31, 7, 0, tzinfo=UTC)
    assert paris_date(datetime(2027, 6, 30, 22, 30, tzinfo=UTC)) == date(2027, 7, 1)  # already 1 July in Paris
