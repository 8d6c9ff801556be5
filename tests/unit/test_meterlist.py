"""The meter-list rules of sections 4.2 and 5.1.3."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sonocli.config.chipini import ChipIni
from sonocli.config.device_handle import MeterList
from sonocli.engine import meterlist as ml
from sonocli.errors import NotFoundError, UsageError
from sonocli.model.values import Interface, Meter, ValueConfig

NO_LIMITS = ml.Limits(0, 0, 0)


def _mbus(serial: str, values: int = 2, **kw: object) -> Meter:
    return Meter(
        Interface.MBUS,
        serial=serial.zfill(8),
        manufacturer="DFS",
        version=1,
        medium=4,
        values=tuple(ValueConfig(description="Energy", tariff=i) for i in range(values)),
        **kw,  # type: ignore[arg-type]
    )


def _list(*meters: Meter) -> MeterList:
    return MeterList(meters=meters)


def test_limits_from_chip_ini() -> None:
    ini = ChipIni.from_text("[CONFIG]\nMETER_MAXDEVICECOUNT=3\nMETER_MAXALLVALUECOUNT=9\n")
    assert ml.Limits.from_settings(ini.get) == ml.Limits(3, 25, 9)


@pytest.mark.parametrize("label", ["OG-1-Re", "Basement", "A-Z a_z 0.9 !$%&/()=?+*,"])
def test_valid_labels(label: str) -> None:
    assert ml.check_label(label) == label


@pytest.mark.parametrize("label", ["a<b", "a>b", 'say "x"', "semi;colon", "tab\there", "Küche", "“quoted”"])
def test_forbidden_label_characters(label: str) -> None:
    with pytest.raises(UsageError, match="is not allowed; allowed: A-Z"):
        ml.check_label(label)


@given(st.text(max_size=20))
def test_label_check_never_lets_forbidden_through(text: str) -> None:
    try:
        ml.check_label(text)
    except UsageError:
        return
    assert not set(text) & set('<>";\n\r')


def test_obis_normalised_and_checked() -> None:
    assert ml.check_obis("1-0:1.8.0*255") == "1-0:1.8.0*255"
    assert ml.check_obis("1-0:1.8.0") == "1-0:1.8.0*255"
    for bad in ("1-0:1.8.256*255", "1-0:1.8", "1.0.1.8.0.255", "a-b:c.d.e*f", "1-0:1.8.0*<"):
        with pytest.raises(UsageError, match="OBIS code"):
            ml.check_obis(bad)


def test_find_by_position_serial_and_device_id() -> None:
    meters = _list(_mbus("30101198"), _mbus("30101199"))
    assert ml.find_meter(meters, "2") == 1
    assert ml.find_meter(meters, "30101199") == 1
    assert ml.find_meter(meters, "0x30101198") == 0
    assert ml.find_meter(meters, "dfs-30101199-01-04") == 1
    assert ml.find(meters, "2/2") == (1, 1)
    assert ml.find(meters, "30101198.1") == (0, 0)
    for missing in ("3", "0", "99999999", "XYZ-1"):
        with pytest.raises(NotFoundError):
            ml.find_meter(meters, missing)
    with pytest.raises(NotFoundError, match="has 2 value"):
        ml.find(meters, "1/3")


def test_ambiguous_serial_is_refused() -> None:
    meters = _list(_mbus("30101198"), Meter(Interface.WMBUS, serial="30101198", manufacturer="KAM"))
    with pytest.raises(UsageError, match="ambiguous"):
        ml.find_meter(meters, "30101198")
    assert ml.find_meter(meters, "KAM-30101198-00-00") == 1


def test_add_n_meters_counts_serials_up() -> None:
    updated, new = ml.add_meters(MeterList(), Meter(Interface.DLDE, serial="00000009"), 3, NO_LIMITS)
    assert [m.serial for m in new] == ["00000009", "00000010", "00000011"]
    assert updated.meters == tuple(new)


def test_s0_meters_and_values_one_at_a_time() -> None:
    with pytest.raises(UsageError, match="one at a time"):
        ml.add_meters(MeterList(), Meter(Interface.S0), 2, NO_LIMITS)
    meters, _ = ml.add_meters(MeterList(), Meter(Interface.S0, serial="1"), 1, NO_LIMITS)
    with pytest.raises(UsageError, match="one at a time"):
        ml.add_values(meters, "1", ValueConfig(), 2, NO_LIMITS)
    meters, added = ml.add_values(meters, "1", ValueConfig(value=280.09, exponent=-4, unit="kWh"), 1, NO_LIMITS)
    assert meters.meters[0].values == tuple(added)


def test_values_only_for_manual_meters() -> None:
    with pytest.raises(UsageError, match="only to S0 and DLDE"):
        ml.add_values(_list(_mbus("1")), "1", ValueConfig(), 1, NO_LIMITS)


def test_device_count_limit() -> None:
    meters = _list(_mbus("1"), _mbus("2"))
    with pytest.raises(UsageError, match="METER_MAXDEVICECOUNT allows 3"):
        ml.add_meters(meters, Meter(Interface.DLDE), 2, ml.Limits(3, 0, 0))
    updated, _ = ml.add_meters(meters, Meter(Interface.DLDE), 1, ml.Limits(3, 0, 0))
    assert len(updated.meters) == 3


def test_value_count_limits() -> None:
    meters = _list(Meter(Interface.DLDE, serial="1"), Meter(Interface.DLDE, serial="2", max_value_count=1))
    with pytest.raises(UsageError, match="METER_MAXVALUECOUNT allows 2"):
        ml.add_values(meters, "1", ValueConfig(), 3, ml.Limits(0, 2, 0))
    with pytest.raises(UsageError, match="its maxvaluecount allows 1"):
        ml.add_values(meters, "2", ValueConfig(), 2, ml.Limits(0, 25, 0))
    meters, _ = ml.add_values(meters, "1", ValueConfig(), 2, ml.Limits(0, 2, 3))
    with pytest.raises(UsageError, match="3 values in all; METER_MAXALLVALUECOUNT allows 2"):
        ml.add_values(meters, "2", ValueConfig(), 1, ml.Limits(0, 2, 2))


def test_limits_do_not_hit_meters_read_with_more_values() -> None:
    meters = _list(_mbus("1", values=30))  # METER_MAXVALUECOUNT limits readouts, not the list
    updated, _ = ml.add_meters(meters, Meter(Interface.DLDE, serial="2"), 1, ml.Limits())
    updated, _ = ml.add_values(updated, "2", ValueConfig(), 1, ml.Limits())
    assert len(updated.meters[1].values) == 1


def test_add_refuses_bad_label_and_obis() -> None:
    meters = _list(Meter(Interface.DLDE, serial="1"))
    with pytest.raises(UsageError, match="user label"):
        ml.add_values(meters, "1", ValueConfig(user="<b>"), 1, NO_LIMITS)
    with pytest.raises(UsageError, match="OBIS"):
        ml.add_values(meters, "1", ValueConfig(obis="1-0:1.8.0*999"), 1, NO_LIMITS)
    with pytest.raises(UsageError, match="16"):
        ml.add_meters(meters, Meter(Interface.WMBUS, key=b"\x01" * 15), 1, NO_LIMITS)


def test_deleting_single_mbus_values_is_refused() -> None:
    meters = _list(_mbus("1"), Meter(Interface.WMBUS, serial="2", values=(ValueConfig(),)))
    for ref in ("1/1", "2/1"):
        with pytest.raises(UsageError, match="not allowed"):
            ml.delete(meters, [ref])
    updated, removed = ml.delete(meters, ["1"])
    assert updated.meters == (meters.meters[1],) and removed == ["DFS-00000001-01-04"]


def test_delete_manual_values_resolves_all_refs_first() -> None:
    values = tuple(ValueConfig(tariff=i) for i in range(4))
    meters = _list(Meter(Interface.DLDE, serial="1", values=values), _mbus("2"))
    updated, removed = ml.delete(meters, ["1/2", "1/4", "2"])
    assert [v.tariff for v in updated.meters[0].values] == [0, 2]
    assert len(updated.meters) == 1 and len(removed) == 3


def test_activation_hierarchy() -> None:
    meters = _list(_mbus("1", values=3))
    off = ml.set_active(meters, "1", False)
    assert not off.meters[0].active and not any(v.active for v in off.meters[0].values)
    one = ml.set_active(off, "1/2", True)
    assert one.meters[0].active
    assert [v.active for v in one.meters[0].values] == [False, True, False]
    value_off = ml.set_active(meters, "1/1", False)
    assert value_off.meters[0].active and [v.active for v in value_off.meters[0].values] == [False, True, True]
    on = ml.set_active(off, "1", True)
    assert on.meters[0].active and all(v.active for v in on.meters[0].values)


def test_edit_rules_depend_on_interface() -> None:
    meters = _list(_mbus("1"), Meter(Interface.S0, serial="2", values=(ValueConfig(),)))
    with pytest.raises(UsageError, match="serial cannot be changed"):
        ml.edit_meter(meters, "1", {"serial": "5"})
    with pytest.raises(UsageError, match="exponent, unit cannot be changed"):
        ml.edit_value(meters, "1/1", {"unit": "kWh", "exponent": -3})
    edited = ml.edit_value(meters, "2/1", {"unit": "kWh", "exponent": -3, "obis": "1-0:1.8.0"})
    assert edited.meters[1].values[0].obis == "1-0:1.8.0*255"
    edited = ml.edit_meter(meters, "1", {"user": "Keller", "readout_cycle": 60})
    assert (edited.meters[0].user, edited.meters[0].readout_cycle) == ("Keller", 60)
    edited = ml.edit_meter(meters, "2", {"serial": "0x123"})
    assert edited.meters[1].serial == "00000123"
    off = ml.edit_meter(meters, "1", {"active": False})
    assert not any(v.active for v in off.meters[0].values)


def test_set_key() -> None:
    meters = _list(Meter(Interface.WMBUS, serial="1"))
    key = bytes(range(16))
    assert ml.set_key(meters, "1", key).meters[0].key == key
    assert ml.set_key(ml.set_key(meters, "1", key), "1", None).meters[0].key is None
    with pytest.raises(UsageError):
        ml.set_key(meters, "1", b"\x00")


def test_merge_found_is_additive_and_limited() -> None:
    configured = _mbus("1", user="keep me", readout_cycle=60)
    meters = _list(configured)
    found = [_mbus("1", values=7), _mbus("2"), _mbus("3"), _mbus("2")]
    merged, added = ml.merge_found(meters, found, max_devices=0)
    assert merged.meters[0] is configured  # existing entries stay as configured
    assert [m.serial for m in merged.meters] == ["00000001", "00000002", "00000003"]
    assert [m.serial for m in added] == ["00000002", "00000003"]
    limited, added = ml.merge_found(meters, found, max_devices=2)
    assert [m.serial for m in limited.meters] == ["00000001", "00000002"] and len(added) == 1
    # meters beyond the limit that are already configured stay
    full = _list(_mbus("1"), _mbus("2"), _mbus("3"))
    kept, added = ml.merge_found(full, [_mbus("4")], max_devices=2)
    assert len(kept.meters) == 3 and added == []
