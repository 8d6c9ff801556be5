"""The one repository of the meter list (device_handle.cfg): every writer goes through :meth:`update`.

Commands (``meters edit``, ``keys import``, ``scan --save``, ``listen --save``, ``meters activate``) and the
daemon (scan merges, value entries learned at the first readout) all change the list the same way: under
the file's lock, load the list *as it is on disk now*, apply the change, save atomically. A writer that
waited for the lock therefore works on the list the previous writer saved — it never overwrites another's
change — and a reader sees the old list or the new one, never a mix (atomic rename).

The change is a function of the fresh list, not a list computed earlier: references such as ``3/2`` or a
serial are resolved inside it, so a meter removed meanwhile is "meter 3 does not exist", not an edit of
whichever meter moved into place 3.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sonocli.config.device_handle import MeterList, load_meter_list, save_meter_list
from sonocli.config.locking import locked
from sonocli.errors import SonoError

T = TypeVar("T")


class MeterListWriteError(SonoError):
    """The meter list could not be saved (read-only or full disk): exit 1, the file on disk is unchanged."""


class MeterRepository:
    """Locked read-modify-write of one device_handle.cfg."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> MeterList:
        """The list as saved (no lock needed: every save is an atomic rename)."""
        return load_meter_list(self.path)

    def update(self, change: Callable[[MeterList], tuple[MeterList, T]]) -> T:
        """Apply ``change`` to the fresh list under the lock and save it when it changed.

        ``change`` returns (new list, result); its errors (a reference that does not exist, a limit) leave
        the file untouched. The result is returned.
        """
        try:
            with locked(self.path):
                before = load_meter_list(self.path)
                after, result = change(before)
                if after.state() != before.state():
                    save_meter_list(self.path, after)
        except OSError as exc:
            raise MeterListWriteError(
                f"cannot save the meter list {self.path}: {exc.strerror or exc}",
                hint="check that the root is writable and the disk is not full",
            ) from exc
        return result
