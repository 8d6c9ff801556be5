"""The temporary wM-Bus list (guide 5.1.2): meters heard that are not in the meter list, and the ways out
of it — ``listen --save`` (added inactive) and ``meters activate`` (added active, with the list's own
meters and values activated or deactivated in the same locked write).

The receivers publish the list to the store (sonocli.store.meterstate, see sonocli.engine.wireless), so
every command sees what the daemon heard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sonocli.errors import NotFoundError
from sonocli.model.values import Interface, Meter

if TYPE_CHECKING:
    from sonocli.config.device_handle import MeterList
    from sonocli.engine.core import Engine
    from sonocli.store.meterstate import HeardEntry


def heard_meters(engine: Engine) -> list[HeardEntry]:
    """Meters heard by any receiver (the daemon's too) that are not in the meter list."""
    listed = {m.serial.upper() for m in engine.meter_list().meters if m.interface is Interface.WMBUS}
    return [e for e in engine.meter_state.heard_list() if e.id.upper() not in listed]


def save_heard(engine: Engine, heard: Sequence[Meter]) -> list[Meter]:
    """Add heard meters to the meter list as given (``listen --save``: inactive, guide 5.1.2)."""
    from sonocli.model.valueclass import replace

    def change(meters: MeterList) -> tuple[MeterList, list[Meter]]:
        present = {m.serial.upper() for m in meters.meters if m.interface is Interface.WMBUS}
        new = [m for m in heard if m.serial.upper() not in present]
        return replace(meters, meters=(*meters.meters, *new)), new

    added = engine.update_meters(change)
    engine.meter_state.forget_heard(m.serial for m in added)
    return added


def activate(engine: Engine, refs: Sequence[str], active: bool = True) -> list[str]:
    """Activate (or deactivate) meters and values of the list, and move activated meters of the
    temporary list into the meter list; all or nothing. Returns what changed, as Device-IDs/refs."""
    from sonocli.engine.meterlist import find, set_active, split_ref
    from sonocli.model.valueclass import replace

    temporary = {e.id.upper(): e for e in engine.meter_state.heard_list()} if active else {}

    def heard_id(ref: str) -> str:
        text = ref.strip().upper()
        return (text[2:] if text.startswith("0X") else text).zfill(8)

    def change(meters: MeterList) -> tuple[MeterList, list[str]]:
        done: list[str] = []
        for ref in refs:
            try:
                find(meters, ref)
            except NotFoundError:
                # only a whole meter can come from the temporary list, and only to be activated: any
                # other reference keeps the meter list's own message ("value 1/9 does not exist; …")
                if not active or split_ref(ref)[1] is not None:
                    raise
                entry = temporary.get(heard_id(ref))
                if entry is None:
                    raise NotFoundError(
                        f"meter {ref!r} is neither in the meter list nor in the temporary list of heard "
                        "meters (sonocli meters list, sonocli meters heard)") from None
                meter = Meter(Interface.WMBUS, serial=entry.id, manufacturer=entry.manufacturer,
                              version=entry.version, medium=entry.medium, rssi=entry.rssi or 0)
                meters = replace(meters, meters=(*meters.meters, meter))
                done.append(meter.device_id)
                continue
            meters = set_active(meters, ref, active)
            done.append(ref)
        return meters, done

    done = engine.update_meters(change)
    if temporary:
        engine.meter_state.forget_heard(
            e.id for e in temporary.values() if any(d.startswith(f"{e.manufacturer}-{e.id}-") for d in done))
    return done
