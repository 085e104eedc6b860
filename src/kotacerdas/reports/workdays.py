"""Working days for SLA deadlines: weekdays that are not Indonesian national holidays nor local days off."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from kotacerdas.config import Settings


@lru_cache(maxsize=64)
def _national_holidays(year: int) -> frozenset[date]:
    import holidays  # loaded on first use: start-up time

    return frozenset(holidays.country_holidays("ID", years=year))


class WorkCalendar:
    """The regency's working days: Monday to Friday, less national holidays and configured local days off."""

    def __init__(self, *, zone: ZoneInfo, days_off: frozenset[date] = frozenset()) -> None:
        self.zone = zone
        self.days_off = days_off

    @classmethod
    def of(cls, settings: Settings) -> WorkCalendar:
        return cls(zone=settings.zone, days_off=frozenset(settings.local_days_off))

    def is_working_day(self, day: date) -> bool:
        """True for a weekday that is neither a national holiday nor a local day off."""
        return day.weekday() < 5 and day not in self.days_off and day not in _national_holidays(day.year)

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The end (23:59:59 local time) of the `days`-th working day after `start`'s local date, in UTC.

        A report sent on Friday evening with 3 working days is due at the end of Wednesday; a national holiday or a
        local day off in between moves it one more day.
        """
        day = start.astimezone(self.zone).date()
        remaining = days
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        end_of_day = datetime.combine(day, time(23, 59, 59), tzinfo=self.zone)
        return end_of_day.astimezone(UTC)

    def working_days_between(self, start: datetime, end: datetime) -> int:
        """How many working days lie after `start`'s local date up to and including `end`'s."""
        first = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        count, day = 0, first
        while day < last:
            day += timedelta(days=1)
            count += self.is_working_day(day)
        return count
