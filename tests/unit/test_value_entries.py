"""Value entries of the meter list (sonocli.engine.values): learned once, matched by DIF/VIF, and the only
rule between the store and the outputs (active meters, active values)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sonocli.config.device_handle import MeterList, load_meter_list, parse_meter_list, render_meter_list
from sonocli.engine.core import Engine
from sonocli.engine.meterlist import edit_value, set_active
from sonocli.engine.repository import MeterRepository
from sonocli.engine.values import UNMATCHED, bind, deliverable, learn, manual_reading
from sonocli.model.tables import measurement_index
from sonocli.model.values import Interface, Meter, MeterValue, Reading, ValueConfig, ValueType

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POWER = measurement_index("Power")
ENERGY = measurement_index("Energy")
STAMP = measurement_index("Timestamp")


def _values() -> tuple[MeterValue, ...]:
    return (
        MeterValue(0, ENERGY, "Wh", 3, 12345, dif_vif=bytes.fromhex("0406"), encoding="INT32"),
        MeterValue(1, POWER, "W", 0, 347, dif_vif=bytes.fromhex("022B"), encoding="INT16"),
        MeterValue(2, POWER, "W", 0, 448, function=ValueType.MAXIMUM, dif_vif=bytes.fromhex("122B")),
        MeterValue(3, POWER, "W", 0, 550, function=ValueType.MAXIMUM, storage=1, dif_vif=bytes.fromhex("522B")),
        MeterValue(4, STAMP, "", 0, datetime(2026, 12, 1, 11, 59), dif_vif=bytes.fromhex("046D")),
    )


METER = Meter(Interface.MBUS, serial="12345678", manufacturer="KAM", version=8, medium=4)


def _reading(values: tuple[MeterValue, ...] | None = None, meter: Meter = METER) -> Reading:
    return Reading(meter, WHEN, _values() if values is None else values)


def test_learn_keeps_telegram_order_and_hides_timestamps() -> None:
    entries, limited = learn(_values(), limit=0, show_timestamps=False)
    assert not limited
    assert [(e.description, e.unit, e.valuetype, e.storagenum, e.difvif) for e in entries] == [
        ("Energy", "Wh", ValueType.INSTANTANEOUS, 0, "0406"),
        ("Power", "W", ValueType.INSTANTANEOUS, 0, "022B"),
        ("Power", "W", ValueType.MAXIMUM, 0, "122B"),
        ("Power", "W", ValueType.MAXIMUM, 1, "522B"),
    ]
    assert entries[0].exponent == 3 and entries[0].encodetype == "INT32"
    shown, _ = learn(_values(), limit=0, show_timestamps=True)
    assert len(shown) == 5 and shown[4].description == "Timestamp"


def test_first_binding_learns_and_indexes_the_records() -> None:
    binding = bind(_reading(), METER, default_limit=25, show_timestamps=False)
    assert binding.learned is not None and len(binding.learned) == 4
    assert [v.index for v in binding.reading.values] == [0, 1, 2, 3, UNMATCHED]
    assert not binding.layout_changed and binding.note() is None


def test_limit_marks_the_meter_limited() -> None:
    binding = bind(_reading(), replace(METER, max_value_count=2), default_limit=25, show_timestamps=False)
    assert binding.limited and binding.learned is not None and len(binding.learned) == 2
    assert [v.index for v in binding.reading.values] == [0, 1, UNMATCHED, UNMATCHED, UNMATCHED]
    # METER_MAXVALUECOUNT applies when the meter has no limit of its own
    assert bind(_reading(), METER, default_limit=3, show_timestamps=False).limited
    # a later reading of the limited meter is limited too, and is no layout change
    listed = replace(METER, max_value_count=2, values=binding.learned)
    again = bind(_reading(), listed, default_limit=25, show_timestamps=False)
    assert again.limited and not again.layout_changed


def test_records_follow_their_register_when_the_layout_changes() -> None:
    entries, _ = learn(_values(), limit=0, show_timestamps=False)
    labelled = tuple(replace(e, user=f"L{i}", obis=f"1-0:{i}.8.0*255") for i, e in enumerate(entries))
    listed = replace(METER, values=labelled)
    # new firmware: the stored maximum comes first and an unknown record is added
    values = _values()
    extra = MeterValue(0, measurement_index("Volume"), "m³", -2, 99, dif_vif=bytes.fromhex("0413"))
    changed = (values[3], values[0], extra, values[1], values[2])
    binding = bind(_reading(changed), listed, default_limit=25, show_timestamps=False)
    assert [v.index for v in binding.reading.values] == [3, 0, UNMATCHED, 1, 2]
    assert binding.layout_changed and binding.new == 1 and binding.missing == 0
    note = binding.note()
    assert note is not None and "layout changed" in note and "1 new record" in note
    # the labels went with their registers: the stored maximum keeps L3, never another register's label
    delivered = deliverable(binding.reading)
    assert delivered is not None
    labels = {v.raw: delivered.meter.values[v.index].user for v in delivered.values}
    assert labels == {550: "L3", 12345: "L0", 347: "L1", 448: "L2"}


def test_device_made_list_is_matched_by_table_26_fields() -> None:
    """A device_handle.cfg written by a device has no <difvif>: unit, scale, function, storage decide."""
    entries, _ = learn(_values(), limit=0, show_timestamps=False)
    device = tuple(replace(e, difvif="") for e in entries)
    binding = bind(_reading(), replace(METER, values=device), default_limit=25, show_timestamps=False)
    assert [v.index for v in binding.reading.values][:4] == [0, 1, 2, 3] and not binding.layout_changed


def test_deliverable_keeps_only_active_meters_and_values() -> None:
    entries, _ = learn(_values(), limit=0, show_timestamps=False)
    listed = replace(METER, values=tuple(replace(e, active=i != 2) for i, e in enumerate(entries)))
    bound = bind(_reading(), listed, default_limit=25, show_timestamps=False).reading
    delivered = deliverable(bound)
    assert delivered is not None and [v.raw for v in delivered.values] == [12345, 347, 550]
    assert deliverable(replace(bound, meter=replace(listed, active=False))) is None


def test_manual_meter_values_become_a_reading() -> None:
    meter = Meter(Interface.S0, serial="00000001", values=(
        ValueConfig(description="Energy", unit="Wh", exponent=-1, value=1234.0, obis="1-0:1.8.0*255"),
        ValueConfig(description="Volume", unit="m³", value=None),
    ))
    reading = manual_reading(meter, WHEN)
    assert reading is not None and len(reading.values) == 1
    value = reading.values[0]
    assert (value.index, value.raw, value.exponent, value.unit, value.description) == (0, 1234, -1, "Wh", "Energy")


def test_device_handle_round_trips_the_sonocli_value_fields(tmp_path: Path) -> None:
    entries, _ = learn(_values(), limit=0, show_timestamps=False)
    entries = (replace(entries[0], subunit=1), *entries[1:])
    text = render_meter_list(MeterList(meters=(replace(METER, values=entries),)))
    assert b"<difvif>0x04 0x06</difvif>" in text and b"<subunit>1</subunit>" in text
    again = parse_meter_list(text)
    assert again.meters[0].values == entries


def test_repository_update_never_loses_a_concurrent_change(tmp_path: Path) -> None:
    path = tmp_path / "device_handle.cfg"
    meters = tuple(replace(METER, serial=f"{i:08d}") for i in range(1, 17))
    MeterRepository(path).update(lambda m: (replace(m, meters=meters), None))
    repo = MeterRepository(path)
    errors: list[BaseException] = []

    def label(number: int) -> None:
        try:
            from sonocli.engine.meterlist import edit_meter

            repo.update(lambda m: (edit_meter(m, str(number), {"user": f"M{number}"}), None))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=label, args=(n,)) for n in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [m.user for m in load_meter_list(path).meters] == [f"M{n}" for n in range(1, 17)]


def test_a_failed_change_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "device_handle.cfg"
    MeterRepository(path).update(lambda m: (replace(m, meters=(METER,)), None))
    before = path.read_bytes()
    from sonocli.errors import NotFoundError

    with pytest.raises(NotFoundError):
        MeterRepository(path).update(lambda m: (edit_value(m, "1/9", {"user": "x"}), None))
    assert path.read_bytes() == before


def test_engine_records_learn_once_and_deliver_what_is_configured(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    engine.update_meters(lambda m: (replace(m, meters=(METER,)), None))
    first = engine.record([_reading()])
    assert first.learned == (METER.device_id,)
    listed = engine.meter_list().meters[0]
    assert len(listed.values) == 4
    # the engineer labels one value and deactivates another; the next reading follows
    engine.update_meters(lambda m: (set_active(edit_value(m, "1/2", {"user": "P", "obis": "1-0:16.7.0"}),
                                               "1/3", False), None))
    engine.reload()
    second = engine.record([_reading()])
    assert second.learned == ()
    delivered = Engine.configured(second.readings)
    assert [v.raw for v in delivered[0].values] == [12345, 347, 550]
    assert delivered[0].meter.values[1].user == "P" and delivered[0].meter.values[1].obis == "1-0:16.7.0*255"
    # the store keeps every record of both readings (nothing lost); reports get the configured part
    stored = list(engine.store.iter_readings())
    assert [len(r.values) for r in stored] == [5, 5]
    engine.close()
