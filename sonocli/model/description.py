"""The guide's "Description mode" (Table 10, tab Configuration): how a meter value's description is shown.

Modes, in the guide's order (the index is what a numeric setting means)::

    0 none                       (empty)
    1 standard                   Energy
    2 extended                   Energy [2] <1> {max}
    3 extended with DIF/VIF      Energy [2] <1> {max} # 8C 11 04
    4 extended with raw data     Energy [2] <1> {max} # 8C 11 04 96 47 06 00
    5 DIF/VIF                    8C 11 04
    6 raw data                   8C 11 04 96 47 06 00

"Extended" shows storage number, tariff and value type only where they differ from 0 / instantaneous, as
the guide says; the value type is written {max}, {min} or {error}.
"""

from __future__ import annotations

from typing import Final

from sonocli.model.values import MeterValue, ValueType

MODES: Final[tuple[str, ...]] = (
    "none",
    "standard",
    "extended",
    "extended with DIF/VIF",
    "extended with raw data",
    "DIF/VIF",
    "raw data",
)

_TYPE_WORDS: Final = {ValueType.MAXIMUM: "max", ValueType.MINIMUM: "min", ValueType.ERRORGATE: "error"}


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


_BY_KEY: Final = {_key(name): index for index, name in enumerate(MODES)}


def mode_index(mode: int | str) -> int:
    """The mode number for an index or a name (case, spaces, '/', '-' and '_' ignored)."""
    if isinstance(mode, int):
        if 0 <= mode < len(MODES):
            return mode
        raise ValueError(f"description mode {mode} is outside 0..{len(MODES) - 1}")
    text = mode.strip()
    if text.isdigit():
        return mode_index(int(text))
    index = _BY_KEY.get(_key(text))
    if index is None:
        raise ValueError(f"description mode {mode!r} is not one of: {', '.join(MODES)}")
    return index


def _hex(data: bytes) -> str:
    return data.hex(" ").upper()


def describe(value: MeterValue, mode: int | str) -> str:
    """The description of ``value`` as the website shows it in ``mode``."""
    index = mode_index(mode)
    if index == 0:
        return ""
    if index == 1:
        return value.description
    if index == 5:
        return _hex(value.dif_vif)
    if index == 6:
        return _hex(value.dif_vif + value.data)
    parts = [value.description]
    if value.storage:
        parts.append(f"[{value.storage}]")
    if value.tariff:
        parts.append(f"<{value.tariff}>")
    word = _TYPE_WORDS.get(value.function)
    if word:
        parts.append("{" + word + "}")
    if index == 3:
        parts += ["#", _hex(value.dif_vif)]
    elif index == 4:
        parts += ["#", _hex(value.dif_vif + value.data)]
    return " ".join(parts)
