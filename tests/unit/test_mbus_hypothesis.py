"""Arbitrary bytes into the link and application layers: only SonoErrors, never a crash or a hang."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sonocli.codecs import mbus_app, mbus_link
from sonocli.codecs.mbus_app import (
    SUPPORTED_CI,
    decode_application,
    decode_record_block,
    decode_records,
    decode_wired,
)
from sonocli.errors import SonoError

ANY_BYTES = st.binary(max_size=300)
FAST = settings(max_examples=int(__import__("os").environ.get("HYP_N", "300")), deadline=None)


@FAST
@given(ANY_BYTES)
def test_link_layer_raises_only_decode_errors(data: bytes) -> None:
    try:
        frame, used = mbus_link.decode_frame(data)
    except SonoError:
        return
    assert 0 < used <= len(data)
    assert mbus_link.encode(frame) == data[:used] or isinstance(frame, mbus_link.ControlFrame)


@FAST
@given(ANY_BYTES, st.lists(st.integers(1, 40), max_size=20))
def test_stream_decoder_never_raises_and_finds_only_valid_frames(data: bytes, cuts: list[int]) -> None:
    decoder = mbus_link.StreamDecoder()
    frames: list[mbus_link.Frame] = []
    pos = 0
    for cut in [*cuts, len(data)]:
        frames += decoder.feed(data[pos : pos + cut])
        pos += cut
    frames += decoder.feed(data[pos:])
    for frame in frames:
        assert mbus_link.decode_frame(mbus_link.encode(frame))[0] == frame
    assert decoder.skipped + len(decoder.pending) + sum(len(mbus_link.encode(f)) for f in frames) == len(data)


@FAST
@given(ANY_BYTES)
def test_records_raise_only_sono_errors(data: bytes) -> None:
    try:
        values, _more, _mfr = decode_records(data, strict=True)
    except SonoError:
        return
    for value in values:
        _ = value.value  # computing the value must not fail either


@FAST
@given(ANY_BYTES)
def test_tolerant_records_never_raise(data: bytes) -> None:
    block = decode_record_block(data)
    assert all(isinstance(w, str) for w in block.warnings)


@FAST
@given(st.sampled_from(sorted(SUPPORTED_CI)), ANY_BYTES)
def test_application_layer_raises_only_sono_errors(ci: int, data: bytes) -> None:
    try:
        decode_application(ci, data)
    except SonoError:
        pass


@FAST
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.binary(max_size=249))
def test_valid_long_frames_with_random_payload(control: int, address: int, ci: int, payload: bytes) -> None:
    wire = mbus_link.encode(mbus_link.LongFrame(control, address, ci, payload))
    try:
        decode_wired(wire)
    except SonoError as exc:
        assert str(exc)


_SIZES = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 6: 6, 7: 8, 8: 0, 9: 1, 10: 2, 11: 3, 12: 4, 14: 6}


@st.composite
def well_formed_record(draw: st.DrawFn) -> bytes:
    """One record coded as EN 13757-3 says: DIF (+DIFEs), VIF (+VIFEs, plain text), data of the DIF's size."""
    dfield = draw(st.sampled_from([*_SIZES, 13]))
    difes = draw(st.lists(st.integers(0, 0x7F), max_size=10))
    dif = dfield | draw(st.integers(0, 7)) << 4 | (0x80 if difes else 0)
    if dfield == 0x0F:
        dif &= 0x7F
    out = bytearray([dif])
    out += bytes(b | 0x80 for b in difes[:-1]) + bytes(difes[-1:])
    vif = draw(st.integers(0, 0x7F))
    # 0x13/0x1E/0x1F on an LVAR record announce a compact profile (one value per element): left out here
    vife_codes = st.integers(0, 0x7F).filter(lambda b: b not in (0x13, 0x1E, 0x1F))
    vifes = draw(st.lists(vife_codes, max_size=10, min_size=1 if vif in (0x7B, 0x7D) else 0))
    out.append(vif | (0x80 if vifes else 0))
    out += bytes(b | 0x80 for b in vifes[:-1]) + bytes(vifes[-1:])
    if vif == 0x7C:
        text = draw(st.binary(max_size=20))
        out += bytes([len(text)]) + text
    if dfield == 13:
        lvar = draw(st.sampled_from([*range(0, 0xC0, 7), *range(0xC0, 0xF0), 0xF0, 0xF4, 0xF5, 0xF6]))
        size = {0xF5: 48, 0xF6: 64}.get(lvar, lvar if lvar < 0xC0 else lvar & 0x0F if lvar < 0xE0 else lvar - 0xE0)
        if 0xF0 <= lvar <= 0xF4:
            size = (lvar - 0xEC) * 4
        out += bytes([lvar]) + draw(st.binary(min_size=size, max_size=size))
    else:
        out += draw(st.binary(min_size=_SIZES[dfield], max_size=_SIZES[dfield]))
    return bytes(out)


@FAST
@given(st.lists(well_formed_record(), min_size=1, max_size=8))
def test_well_formed_records_always_decode(records: list[bytes]) -> None:
    values, more, mfr = decode_records(b"".join(records), strict=True)
    assert len(values) == len(records) and not more and mfr == b""
    for value, record in zip(values, records, strict=True):
        assert value.dif_vif + value.data == record
        _ = value.value


def _outcome(data: bytes) -> object:
    try:
        return decode_records(data, base_offset=7, strict=True)
    except SonoError as exc:
        return (type(exc), str(exc))


@FAST
@given(st.lists(well_formed_record(), min_size=1, max_size=6), st.binary(max_size=12), st.integers(0, 80))
def test_header_fast_lane_agrees_with_the_checked_path(records: list[bytes], tail: bytes, cut: int) -> None:
    """_records looks walked DIB/VIB bytes up in a memo of parsed headers and only falls back to the
    checked path on a miss. Decoding with an empty memo (every header checked) and again with a warm one
    (every known header taken from the fast lane) must give the same values, or the same error at the
    same offset, also for data cut short anywhere or followed by garbage."""
    data = b"".join(records) + tail
    data = data[: max(1, len(data) - cut)]
    mbus_app._SPECS.clear()
    cold = _outcome(data)
    warm = _outcome(data)
    assert warm == cold
    # and a memo warmed by the intact records still refuses the cut-short copy in the same words
    mbus_app._SPECS.clear()
    _outcome(b"".join(records))
    assert _outcome(data) == cold
