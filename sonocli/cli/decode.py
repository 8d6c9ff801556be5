"""`sonocli decode`: one frame from the command line, stdin or a file, as a table or JSON.

Input is hex (spaces and newlines allowed) or, from a file or stdin, raw binary. The command only reads the
input and renders: the decoding is ``sonocli.engine.decoding`` (``decode_wired`` for a wired frame,
``decode_wireless`` behind ``print_wireless_decode`` for wireless telegrams).
"""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

import click

from sonocli.cli.context import CliContext
from sonocli.cli.helpoption import PathText
from sonocli.errors import DecodeError, NeedMoreData, NoKeyError, SonoError, UsageError

_WHITESPACE = " \t\n\r\x0b\x0c"  # string.whitespace and string.hexdigits, without importing string (0.4 ms)
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_SEPARATORS = frozenset(_WHITESPACE + ",:_|")


def parse_hex(text: str) -> bytes:
    """Hex digits, optionally separated by whitespace, ',', ':', '_' or '|' and prefixed by 0x (as log
    files print them; wmbusmeters logs ``telegram=|2C44…_0C13…|``, its prefix is skipped too); errors
    name the character position and what is wrong."""
    stripped = text.lstrip()
    if stripped[:9].lower() == "telegram=":
        text = " " * (len(text) - len(stripped) + 9) + stripped[9:]  # keep positions for the errors
    digits: list[str] = []
    skip = -1
    for position, ch in enumerate(text):
        if position == skip or ch in _SEPARATORS:
            continue
        if ch == "0" and text[position + 1 : position + 2] in ("x", "X"):
            before = text[position - 1] if position else " "
            if before in _SEPARATORS:
                skip = position + 1
                continue
        if ch not in _HEXDIGITS:
            raise DecodeError(f"input is not hex: {ch!r} at character {position + 1}", offset=len(digits) // 2)
        digits.append(ch)
    if not digits:
        raise DecodeError("no input: give a frame as hex, '-' for stdin, or --file PATH")
    if len(digits) % 2:
        raise DecodeError(
            f"odd number of hex digits ({len(digits)}): the last byte is incomplete", offset=len(digits) // 2
        )
    return bytes.fromhex("".join(digits))


def _bytes_from_blob(blob: bytes) -> bytes:
    """File or stdin content: text when every byte is printable ASCII or whitespace, else binary.

    Text is parsed as hex (with the separators and 0x prefixes of parse_hex), so a file holding a typo or
    something that is not a frame at all gets the "not hex" error with its position. No real frame is
    printable from end to end: a wired frame ends with 0x16 (or is E5, or starts with 0x10), and a
    wireless telegram carries CRC or encrypted bytes.
    """
    if not blob:
        raise DecodeError("no input: the file or stdin is empty")
    if all(b in _TEXT_BYTES for b in blob):
        return parse_hex(blob.decode("ascii"))
    return blob


_TEXT_BYTES = frozenset((*range(0x20, 0x7F), *(ord(ch) for ch in _WHITESPACE)))


def _looks_wired(data: bytes) -> bool:
    """A broken wired frame is still a wired frame: truncated, with a wrong stop byte or with bytes after
    it, it must get the link layer's error naming the offset, not a wireless decoder's. 68 L L 68 is
    wired whatever follows (a wireless telegram would need C = M-low and M-high = 0x68); E5 and short
    frames are shorter than the shortest wireless telegram (11 bytes)."""
    if data[:1] == b"\x68":
        return len(data) < 4 or (data[1] == data[2] and data[3] == 0x68)
    return data[:1] in (b"\xe5", b"\x10") and len(data) < 11


# What a complete wired frame looks like, by its first byte (EN 13757-2), for "frame incomplete" errors.
_FRAME_SHAPES = {
    0x68: "a long frame is 68 L L 68 C A CI data… CS 16, L = the number of bytes from C to the last data byte, "
    "CS = their sum mod 256; e.g. 68 03 03 68 53 FE 50 A1 16",
    0x10: "a short frame is 10 C A CS 16, CS = C + A mod 256; e.g. 10 5B FE 59 16",
}

MAX_INPUT = 1 << 20  # far above any frame (261 bytes) or telegram written out as hex with separators


def _read_limited(stream: BinaryIO, what: str) -> bytes:
    """Read at most MAX_INPUT bytes: a wrong path such as /dev/zero must not fill the memory."""
    blob = stream.read(MAX_INPUT + 1)
    if len(blob) > MAX_INPUT:
        raise UsageError(f"{what}: more than {MAX_INPUT} bytes; give one frame or telegram")
    return blob


def _print_text(result: dict[str, Any]) -> None:
    from sonocli.cli.output import print_records

    if "frame" in result:
        details = ", ".join(f"{k} 0x{v:02X}" for k, v in result.items() if isinstance(v, int))
        data = f", data {result['data']}" if result.get("data") else ""
        click.echo(f"{result['frame']} frame" + (f": {details}" if details else "") + data)
        return
    header = result.get("header")
    title = None
    if header:
        if header["id"] is not None:
            title = (
                f"{header['manufacturer'] or '---'}-{header['id']}-{header['version']:02X} "
                f"{header['medium']}, access number {header['access_number']}, status 0x{header['status']:02X}"
            )
        else:
            title = f"access number {header['access_number']}, status 0x{header['status']:02X}"
    if "application_error" in result:
        err = result["application_error"]
        click.echo(f"application error {err['code']}: {err['text']}")
        return
    print_records(title, result["records"])
    if result.get("manufacturer_data"):
        click.echo(f"manufacturer data: {result['manufacturer_data']}")
    if result["more_records_follow"]:
        click.echo("more records follow (DIF 0x1F): send REQ_UD2 again")


def _wireless_options(format_hex: str | None, driver: str | None, explain: bool) -> Any:
    """WirelessOptions for the engine: --format parsed as hex, the root's database when it has one."""
    from sonocli.engine.decoding import WirelessOptions, formats_database

    headers = None
    if format_hex is not None:
        try:
            headers = parse_hex(format_hex)
        except DecodeError as exc:
            raise UsageError(f"--format: {exc.message}") from exc
    obj = click.get_current_context().find_object(CliContext)
    try:
        database = formats_database(obj.root if obj is not None else CliContext().root)
    except SonoError:  # no usable root: decode still works, with built-in formats only
        database = None
    return WirelessOptions(compact_format=headers, driver=driver, explain=explain, database=database)


@click.command("decode")
@click.argument("frame", nargs=-1)
@click.option(
    "--file", "file_", type=PathText(dir_okay=False), help="Read the frame (hex or binary)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--key",
    "key",
    default=None,
    help="AES-128 key (32 hex digits) of an encrypted wireless telegram or wired frame (security mode 5).",
)
@click.option(
    "--format",
    "format_hex",
    default=None,
    metavar="HEX",
    help="Record headers (DIF/VIF bytes without data) of a compact frame whose full frame was never seen.",
)
@click.option("--driver", "driver", default=None, help="Read the proprietary payload with this driver by name.")
@click.option("--explain", is_flag=True, help="Show byte by byte how a wireless telegram was read.")
def decode(
    frame: tuple[str, ...],
    file_: str | None,
    as_json: bool,
    key: str | None,
    format_hex: str | None,
    driver: str | None,
    explain: bool,
) -> None:
    """Decode a wired M-Bus frame or wireless telegram given as HEX, '-' for stdin, or --file PATH.

    HEX may be split by spaces, ',', ':', '_' or '|' (wmbusmeters' telegram=|...| works as logged).
    A compact frame is expanded with a built-in format, one the daemon learnt (stored in the root's
    database) or the headers given with --format; --driver and --explain apply to wireless telegrams.
    """
    if file_ is not None and frame:
        raise UsageError("give the frame either as HEX/'-' or with --file, not both")
    if file_ is not None:
        try:
            with open(file_, "rb") as stream:
                data = _bytes_from_blob(_read_limited(stream, f"--file {file_}"))
        except OSError as exc:
            raise UsageError(f"--file {file_}: cannot read it ({exc.strerror})") from exc
    elif frame == ("-",):
        data = _bytes_from_blob(_read_limited(sys.stdin.buffer, "stdin"))
    elif frame:
        data = parse_hex(" ".join(frame))
    else:
        raise UsageError("give the frame as HEX, '-' for stdin, or --file PATH")
    from sonocli.cli.common import looks_wireless, print_wireless_decode
    from sonocli.engine.decoding import decode_wired, refuse_garbage_before_a_frame

    if not _looks_wired(data):
        refuse_garbage_before_a_frame(data)
    if not _looks_wired(data) and looks_wireless(data):  # wireless M-Bus (EN 13757-4): the wmbus pipeline
        print_wireless_decode(data, key, as_json, _wireless_options(format_hex, driver, explain))
        return
    if format_hex is not None or driver is not None or explain:
        raise UsageError("--format, --driver and --explain apply to wireless telegrams; this is a wired frame")
    try:
        result = decode_wired(data, key)
    except NoKeyError as exc:
        raise NoKeyError(exc.message, hint="give the AES key with --key 32HEX") from exc
    except NeedMoreData as exc:  # cut short: say what the whole frame looks like
        raise DecodeError(exc.reason, offset=exc.offset, hint=_FRAME_SHAPES.get(data[0])) from exc
    obj = click.get_current_context().find_object(CliContext)
    if obj is None or obj.verbosity >= 0:  # -q silences warnings; --json still carries them
        for warning in result.get("warnings", ()):
            click.echo(f"sonocli: warning: {warning}", err=True)
    if as_json:
        from sonocli.cli.output import emit_json

        emit_json(result)
    else:
        _print_text(result)
