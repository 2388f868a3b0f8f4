"""Public holidays of one country (and optionally one of its subdivisions), from the maintained ``holidays``
package rather than a table of our own: Easter-based and moved holidays come out right for every year."""

from __future__ import annotations

from datetime import date

import holidays

#: Years whose holidays are kept computed (a ListEvents range spans two at most).
YEARS_CACHED = 64


class UnknownRegion(ValueError):
    """The country or subdivision is not one the ``holidays`` package knows."""


class PublicHolidays:
    """The holidays of ``country`` (ISO 3166-1 alpha-2, e.g. ``FR``) and ``subdivision`` (e.g. ``Zone A``);
    an empty country means none at all."""

    def __init__(self, country: str, subdivision: str = "") -> None:
        self.country = country.strip().upper()
        self.subdivision = subdivision.strip()
        check_region(self.country, self.subdivision)
        #: year -> its holidays; computing a year takes about a millisecond, and every ListEvents asks
        self._years: dict[int, list[tuple[date, str]]] = {}

    def between(self, first: date, last: date) -> list[tuple[date, str]]:
        """(date, name) of every holiday from ``first`` to ``last`` included, by date. Several holidays on one
        day are one entry whose names are joined with "; ", as the package gives them."""
        if not self.country:
            return []
        found = [entry for year in range(first.year, last.year + 1) for entry in self._year(year)]
        return [(day, name) for day, name in found if first <= day <= last]

    def _year(self, year: int) -> list[tuple[date, str]]:
        if year not in self._years:
            if len(self._years) >= YEARS_CACHED:
                self._years.clear()
            found = holidays.country_holidays(self.country, subdiv=self.subdivision or None, years=year)
            self._years[year] = sorted(found.items())
        return self._years[year]


def check_region(country: str, subdivision: str) -> None:
    """Raise ``UnknownRegion`` with the reason if ``holidays`` does not know the country or subdivision."""
    if not country:
        if subdivision:
            raise UnknownRegion("a subdivision needs a country")
        return
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise UnknownRegion(f"{country!r} is not a country the holidays package knows (ISO 3166-1 alpha-2, e.g. FR)")
    if subdivision and subdivision not in supported[country]:
        known = ", ".join(supported[country]) or "none"
        raise UnknownRegion(f"{subdivision!r} is not a subdivision of {country} (known: {known})")
