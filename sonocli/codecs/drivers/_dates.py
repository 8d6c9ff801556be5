"""Dates for virtual records: EN 13757-3 type G (day, month, two-digit year), as a VIF 0x6C record holds them."""

from __future__ import annotations

from datetime import date


def type_g(when: date) -> bytes:
    """Two bytes of a type G date: day | year bits 0-2 << 5, month | year bits 3-6 << 4."""
    year = when.year - 2000
    return bytes((when.day | (year & 0x07) << 5, when.month | (year & 0x78) << 1))


def safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None
