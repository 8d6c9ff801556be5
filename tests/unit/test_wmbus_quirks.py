"""Manufacturer specificities of the wireless link layer (issue 14): the Diehl address layouts.

Expected ids are what wmbusmeters prints for real telegrams (tests/data/wmbus/diehl_address_quirks.json,
with provenance); the synthetic frames below only vary the C-field, M-field and CI of a real telegram to
reach each branch of the frame-interpretation rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sonocli.codecs.wmbus import DecodeOptions, decode_telegram
from sonocli.codecs.wmbus_link import diehl_address, diehl_interpretation, normalise_frame
from sonocli.engine.decoding import telegram_to_dict

DATA = json.loads((Path(__file__).parents[1] / "data" / "wmbus" / "diehl_address_quirks.json").read_text())


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_real_id_of_diehl_frames(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    telegram, _ = normalise_frame(raw)
    assert diehl_interpretation(telegram) == case["interpretation"]
    head = decode_telegram(raw, DecodeOptions(decode_application=False))
    assert head.meter.id == case["id"]
    assert head.meter.device_type == case["device_type"]
    assert head.link.address.dll_id == case["dll_id"]
    assert head.link.address.raw == telegram[2:10]  # IVs and the PRIOS LFSR seed use the bytes on the air


def test_json_keeps_the_dll_address() -> None:
    case = next(c for c in DATA["cases"] if c["name"] == "HydrusIzarRSWarm")
    out = telegram_to_dict(decode_telegram(bytes.fromhex(case["hex"])))
    assert out["header"]["id"] == "60904720"
    assert out["header"]["dll_address"] == {"id": "4720068B", "version": 0x90, "device_type": 0x60,
                                            "quirk": "diehl-swap"}
    kamstrup = bytes.fromhex(DATA["cases"][0]["hex"]).replace(b"\x24\x23", b"\x2d\x2c", 1)
    plain = telegram_to_dict(decode_telegram(kamstrup))
    assert "dll_address" not in plain["header"]  # KAM: no quirk, no extra field


def _variant(hex_text: str, *, c: int | None = None, m: bytes | None = None, ci: int | None = None,
             cfg_high: int | None = None) -> bytes:
    data = bytearray(bytes.fromhex(hex_text))
    if c is not None:
        data[1] = c
    if m is not None:
        data[2:4] = m
    if ci is not None:
        data[10] = ci
    if cfg_high is not None:
        data[14] = cfg_high
    return bytes(data)


PRIOS = next(c for c in DATA["cases"] if c["name"] == "IzarWater6")["hex"]
REAL = next(c for c in DATA["cases"] if c["name"] == "HydrusIzarRS")["hex"]


@pytest.mark.parametrize(
    ("telegram", "interpretation", "meter_id"),
    [
        (_variant(PRIOS, ci=0xB1), "PRIOS_SCR", "48500375"),
        (_variant(PRIOS, ci=0xA8), "RESERVED", "03750786"),
        (_variant(PRIOS, ci=0xB0), "RESERVED", "03750786"),
        (_variant(PRIOS, ci=0x71), "REAL_DATA", "48500375"),
        (_variant(PRIOS, c=0x46), "PRIOS", "48500375"),  # SND_IR as SND_NR
        (_variant(PRIOS, c=0x08), None, "03750786"),  # RSP_UD: not a Diehl broadcast
        (_variant(PRIOS, m=bytes.fromhex("2D2C")), None, "03750786"),  # KAM: standard layout
        (_variant(PRIOS, m=bytes.fromhex("A511")), "PRIOS", "48500375"),  # DME
        (_variant(PRIOS, m=bytes.fromhex("304C"), ci=0xB0), "SAP_PRIOS_STD", "03750786"),  # not transformed
        (_variant(REAL, cfg_high=0x05), "OMS", "7379078B"),  # mode 5: the standard layout
        (_variant(REAL, ci=0x78), "OMS", "7379078B"),
    ],
)
def test_frame_interpretation_rules(telegram: bytes, interpretation: str | None, meter_id: str) -> None:
    assert diehl_interpretation(telegram) == interpretation
    assert diehl_address(telegram).id == meter_id


def test_sap_prios_sets_water_and_keeps_the_id() -> None:
    case = next(c for c in DATA["cases"] if c["name"] == "IzarWater")
    address = diehl_address(bytes.fromhex(case["hex"]))
    assert (address.id, address.version, address.device_type, address.quirk) == ("21242472", 0, 7, "diehl-sap-prios")
    assert (address.dll_version, address.dll_device_type) == (0xD4, 0x01)
