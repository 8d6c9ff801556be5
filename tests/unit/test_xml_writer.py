"""XML writer: the section 5.3.3 example (transcribed), one golden per protocol version, Table 22 checks."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from sonocli.model.values import Interface, Meter, MeterValue, Reading, ValueConfig, ValueType
from sonocli.outputs.xml_writer import XmlWriter

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent / "data" / "golden"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


samples = _load("golden_samples", GOLDEN / "samples.py")
store_strategies = _load("store_strategies", HERE / "test_store_readings.py")


def _xml(readings: list[Reading], version: int = 3, **kwargs: object) -> bytes:
    out = io.BytesIO()
    XmlWriter(version, muc_id=kwargs.pop("muc_id", 0x13FD0), **kwargs).write(  # type: ignore[arg-type]
        readings, out, timestamp=datetime(2024, 1, 1, tzinfo=UTC)
    )
    return out.getvalue()


def test_guide_example_reproduced_byte_for_byte() -> None:
    """The example without its elided `<data ...>`/`<meter ...>` placeholders; its wrapped line joined."""
    out = io.BytesIO()
    count = XmlWriter(3, muc_id=0x13FD0).write(samples.guide_xml_readings(), out, timestamp=samples.ts(1252004322))
    assert count == 2
    assert out.getvalue() == (GOLDEN / "guide_5_3_3_v3.xml").read_bytes()


@pytest.mark.parametrize("scaled", [False, True], ids=["raw", "scaled"])
@pytest.mark.parametrize("version", range(8))
def test_golden_per_version(version: int, scaled: bool) -> None:
    expected = (GOLDEN / samples.golden_name("xml", version, scaled)).read_bytes()
    assert samples.xml_bytes(version, scale_values=scaled) == expected


@pytest.mark.parametrize("version", range(8))
def test_attributes_follow_table22(version: int) -> None:
    root = etree.fromstring(samples.xml_bytes(version))
    assert root.tag == "interface" and root.get("MESSAGE_TYPE") == "2"
    muc = root.find("muc")
    assert muc is not None
    assert muc.get("VERSION") == f"1f{version + 1}"
    assert muc.get("MUC_ID") == ("81872" if version <= 1 else "13fd0")
    assert list(muc.attrib) == ["MUC_ID", "VERSION", "TIMESTAMP"]
    meter_attrs = ["METER_ID", "INTERFACE"] + (["USER"] if version >= 5 else [])
    data_attrs = ["DESCRIPTION", "UNIT", "SCALE", "MEDIUM", "OBIS_ID"]
    data_attrs += ["MAN", "VER", "MED"] if version >= 7 else []
    data_attrs += ["USER"] if version >= 5 else []
    meters = muc.findall("meter")
    assert meters
    entries = 0
    for meter in meters:
        assert list(meter.attrib) == meter_attrs
        assert meter.findall("data")  # Table 21: at least one data item per meter
        for data in meter.findall("data"):
            assert list(data.attrib) == data_attrs
            for entry in data.findall("entry"):
                assert [p.get("NAME") for p in entry] == ["T", "T_MUC", "VAL"]
                entries += 1
    # every value of every reading is one entry; the reading without values is left out
    assert entries == sum(len(r.values) for r in samples.mixed_readings())


def test_message_type_of_table21_on_request() -> None:
    root = etree.fromstring(_xml(samples.guide_xml_readings(), message_type=1))
    assert root.get("MESSAGE_TYPE") == "1"


def test_group_limit_splits_long_runs_of_one_meter() -> None:
    meter = Meter(Interface.MBUS, serial="00000001", manufacturer="ABB", version=1, medium=2,
                  values=(ValueConfig(obis="1-0:1.8.0*255"),))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    readings = [
        Reading(meter, start + timedelta(minutes=15 * n), (MeterValue(0, 9, "Wh", raw=n),)) for n in range(25)
    ]
    root = etree.fromstring(_xml(readings, group_limit=10))
    meters = root.findall("muc/meter")
    assert [len(m.findall("data/entry")) for m in meters] == [10, 10, 5]
    vals = [int(p.text or "") for p in root.iterfind("muc/meter/data/entry/parameter[@NAME='VAL']")]
    assert vals == list(range(25))


def _power_meter_readings(count: int) -> list[Reading]:
    """``count`` readings of one meter with instantaneous, maximum and stored maximum (storage 1) power.

    All three are ``POWER``/``W`` at the same scale with no OBIS code, so only their index tells them apart.
    """
    meter = Meter(
        Interface.MBUS, serial="00000347", manufacturer="ABB", version=1, medium=2,
        values=(ValueConfig(), ValueConfig(valuetype=ValueType.MAXIMUM),
                ValueConfig(valuetype=ValueType.MAXIMUM, storagenum=1)),
    )  # fmt: skip
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Reading(meter, start + timedelta(minutes=15 * n), (
            MeterValue(0, 14, "W", raw=347 + n),
            MeterValue(1, 14, "W", raw=448 + n, function=ValueType.MAXIMUM),
            MeterValue(2, 14, "W", raw=550 + n, function=ValueType.MAXIMUM, storage=1),
        ))
        for n in range(count)
    ]  # fmt: skip


def _data_values(root: etree._Element) -> list[list[list[str]]]:
    """VAL texts per ``<data>`` per ``<meter>``."""
    return [
        [[p.text or "" for p in data.iterfind("entry/parameter[@NAME='VAL']")] for data in meter.findall("data")]
        for meter in root.iterfind("muc/meter")
    ]


@pytest.mark.parametrize("version", range(8))
def test_one_data_per_meter_value_not_per_attribute_set(version: int) -> None:
    """Table 21: one data item per meter value, its entries that value's readings over time."""
    root = etree.fromstring(_xml(_power_meter_readings(1), version))
    assert _data_values(root) == [[["347"], ["448"], ["550"]]]
    assert {d.get("DESCRIPTION") for d in root.iter("data")} == {"POWER"}  # equal attributes, still three

    root = etree.fromstring(_xml(_power_meter_readings(2), version))
    assert _data_values(root) == [[["347", "348"], ["448", "449"], ["550", "551"]]]
    times = [[e.findtext("parameter[@NAME='T_MUC']") for e in d.iter("entry")] for d in root.iter("data")]
    assert times == [["1704067200", "1704068100"]] * 3


def test_group_limit_keeps_one_data_per_meter_value() -> None:
    root = etree.fromstring(_xml(_power_meter_readings(3), group_limit=2))
    assert _data_values(root) == [[["347", "348"], ["448", "449"], ["550", "551"]], [["349"], ["450"], ["552"]]]


def test_values_equal_but_for_index_stay_apart() -> None:
    """Two values identical in every field and attribute but their index (e.g. two meter-list entries for
    the same record) are two meter values, so two data items, never one with two entries per reading."""
    meter = Meter(Interface.MBUS, serial="00000001", medium=2, values=(ValueConfig(obis="1-0:1.8.0*255"),) * 2)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    readings = [
        Reading(
            meter, start + timedelta(hours=n), (MeterValue(0, 9, "Wh", raw=10 + n), MeterValue(1, 9, "Wh", raw=20 + n))
        )
        for n in range(2)
    ]
    root = etree.fromstring(_xml(readings, 7))
    datas = root.findall("muc/meter/data")
    assert len(datas) == 2
    assert datas[0].attrib == datas[1].attrib
    assert _data_values(root) == [[["10", "11"], ["20", "21"]]]


def test_t_falls_back_to_concentrator_time() -> None:
    meter = Meter(Interface.S0, serial="00000001")
    at = datetime(2024, 1, 1, 12, tzinfo=UTC)
    meter_time = datetime(2024, 1, 1, 11, 45)  # naive: meters send local time without a zone; taken as UTC
    reading = Reading(meter, at, (MeterValue(0, 9, "Wh", raw=1), MeterValue(1, 9, "Wh", raw=2, timestamp=meter_time)))
    root = etree.fromstring(_xml([reading]))
    ts = [(e.findtext("parameter[@NAME='T']"), e.findtext("parameter[@NAME='T_MUC']")) for e in root.iter("entry")]
    assert ts == [("1704110400", "1704110400"), ("1704109500", "1704110400")]
    assert root.find("muc/meter").get("INTERFACE") == "01"  # type: ignore[union-attr]
    assert root.find("muc/meter/data").get("MEDIUM") == ""  # type: ignore[union-attr]


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(store_strategies.readings, max_size=5), version=st.integers(0, 7))
def test_any_reading_gives_well_formed_xml(batch: list[Reading], version: int) -> None:
    # a control character in a label must not break the document
    batch = [dataclasses.replace(r, meter=dataclasses.replace(r.meter, user=f"{r.meter.user}\x01")) for r in batch]
    root = etree.fromstring(_xml(batch, version))
    assert len(list(root.iter("entry"))) == sum(len(r.values) for r in batch)
