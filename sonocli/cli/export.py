"""``sonocli export csv|xml``: stored readings in the device's CSV or XML format, streamed.

Readings come from ``<root>/ext/sonocli.db`` one chunk at a time and go straight to the output, so a year
of readings for hundreds of meters needs no more memory than a day's. ``-o FILE`` is written atomically
(temp file, fsync, rename): a reader never sees half an export.

Defaults come from chip.ini: MUC_PROTOCOL_VER (the guide allows 0–5 there; sonocli's writers know all eight
versions of Tables 20 and 22, so ``--protocol-version`` accepts 0–7) and MUC_SCALEVALUES.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import click

from sonocli.cli.context import CliContext
from sonocli.cli.output import emit_json, progress
from sonocli.errors import NotFoundError, UsageError
from sonocli.model.values import Reading


def parse_time(option: str, text: str, *, end_of_day: bool = False) -> datetime:
    """ISO 8601 (``2024-01-31``, ``2024-01-31T12:00``, ``…Z``, ``…+01:00``) or Unix seconds; naive means UTC.

    A bare date given to ``--to`` means the end of that day, so ``--from D --to D`` is the whole day.
    """
    value = text.strip()
    try:
        if value.lstrip("+-").replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        if len(value) == 10 and value[4] == "-":
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else start
        moment = datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"{option} {text!r} is not a time; use ISO 8601 (2024-01-31T12:00:00Z) or Unix seconds"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_version(text: str) -> int:
    try:
        version = int(text)
    except ValueError:
        version = -1
    if not 0 <= version <= 7:
        raise UsageError(f"--protocol-version {text!r} is not allowed; allowed: 0-7")
    return version


def _chip_defaults(root: Path) -> tuple[int, bool]:
    """(MUC_PROTOCOL_VER, MUC_SCALEVALUES) from chip.ini; the guide's defaults (3, off) without one."""
    from sonocli.config.chipini import ChipIni
    from sonocli.config.layout import RootLayout

    layout = RootLayout(root)
    if not layout.chip_ini.is_file():
        return 3, False
    ini = ChipIni.load(layout.chip_ini)
    return int(str(ini.get("MUC_PROTOCOL_VER"))), bool(ini.get("MUC_SCALEVALUES"))


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """``-o FILE``: appears only complete (sonocli.fsutil.atomic_open); a missing directory is a usage error."""
    from sonocli.fsutil import atomic_open

    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise NotFoundError(f"-o {path}: directory {directory} does not exist")
    with atomic_open(path) as handle:
        yield handle


def _counted(readings: Iterable[Reading], sink: Any, total: int) -> Iterator[Reading]:
    done = 0
    for reading in readings:
        yield reading
        done += 1
        if done % 1000 == 0:
            sink(done, total)
    sink(done, total)


@click.command("export")
@click.argument("fmt", metavar="csv|xml")
@click.option("--protocol-version", "version_text", metavar="N", help="0-7 [chip.ini MUC_PROTOCOL_VER].")
@click.option("--from", "from_text", metavar="T", help="First reading time, ISO 8601 or Unix seconds (inclusive).")
@click.option("--to", "to_text", metavar="T", help="Last reading time, ISO 8601 or Unix seconds (inclusive).")
@click.option("--meter", metavar="ID", help="Only this meter: serial number or Device-ID (MAN-SERIAL-VV-MM).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (atomically).")
@click.option("--scale-values/--raw-values", default=None, help="Write value x scale [chip.ini MUC_SCALEVALUES].")
@click.option("--muc-id", metavar="HEX", help="XML MUC_ID (hex) [this machine's MUC-ID, see `service info`].")
@click.option("--iec-obis", is_flag=True, help="CSV: OBIS as A-B:C.D.E*F, not Figure 22's A-B-C.D.E*F.")
@click.option("--json", "as_json", is_flag=True, help="With -o: print a JSON summary instead of a line on stderr.")
@click.pass_context
def export(
    ctx: click.Context,
    fmt: str,
    version_text: str | None,
    from_text: str | None,
    to_text: str | None,
    meter: str | None,
    output: Path | None,
    scale_values: bool | None,
    muc_id: str | None,
    iec_obis: bool,
    as_json: bool,
) -> None:
    """Export stored readings as CSV (guide 5.3.2) or XML (guide 5.3.3), to stdout or -o FILE.

    \b
    Examples:
      sonocli export csv --from 2024-01-01 --to 2024-01-31 -o jan.csv
      sonocli export xml --meter DFS-00127550-02-04 --protocol-version 7
    """
    from sonocli.config.layout import RootLayout
    from sonocli.registry import EXPORTERS, load

    writer_class = load(EXPORTERS, fmt, "export format")
    since = parse_time("--from", from_text) if from_text is not None else None
    until = parse_time("--to", to_text, end_of_day=True) if to_text is not None else None
    if since is not None and until is not None and since > until:
        raise UsageError(f"--from {from_text} is after --to {to_text}")
    if as_json and output is None:
        raise UsageError("--json needs -o FILE (without it stdout carries the export itself)")
    muc = None
    if muc_id is not None:
        try:
            muc = int(muc_id, 16)
        except ValueError:
            raise UsageError(f"--muc-id {muc_id!r} is not a hexadecimal number") from None

    obj = ctx.find_object(CliContext) or CliContext()
    layout = RootLayout(obj.root)
    default_version, default_scale = _chip_defaults(obj.root)
    version = parse_version(version_text) if version_text is not None else default_version
    scale = default_scale if scale_values is None else scale_values
    if not layout.database.is_file():
        raise NotFoundError(f"no readings stored: {layout.database} does not exist", hint="check --root")

    from sonocli.store.readings import ReadingStore

    try:
        with ReadingStore(layout.database) as store:
            if meter is not None and not store.meter_known(meter):
                raise NotFoundError(f"--meter {meter}: no readings of this meter are stored")
            select: dict[str, Any] = {"since": since, "until": until, "meter": meter}
            total = store.count(**select) if output is not None else 0
            with contextlib.ExitStack() as stack:
                sink = stack.enter_context(progress(f"export {fmt}", total)) if output is not None else None
                handle: IO[bytes] = (
                    stack.enter_context(atomic_output(output)) if output is not None else sys.stdout.buffer
                )
                if fmt.lower() == "csv":
                    writer = writer_class(
                        version,
                        scale_values=scale,
                        value_count=store.max_value_count(**select),
                        obis_style="iec" if iec_obis else "figure22",
                    )
                    readings: Iterable[Reading] = store.iter_readings(**select)
                    if sink is not None:
                        readings = _counted(readings, sink, total)
                    text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=False)
                    try:
                        count = writer.write(readings, text)
                        text.flush()
                    finally:
                        text.detach()
                else:
                    if muc is None:
                        from sonocli.service.info import muc_id as machine_muc_id

                        muc, _source = machine_muc_id(layout)
                    writer = writer_class(version, muc_id=muc, scale_values=scale)
                    readings = store.iter_readings(**select, order="meter")
                    if sink is not None:
                        readings = _counted(readings, sink, total)
                    count = writer.write(readings, handle, timestamp=datetime.now(UTC))
                handle.flush()
    except BrokenPipeError:
        # The reader (head, less) went away: stop quietly like a Unix tool, not with a traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        ctx.exit(1)
    if output is not None:
        if as_json:
            emit_json({"format": fmt.lower(), "protocol_version": version, "readings": count, "file": str(output)})
        else:
            click.echo(f"sonocli: exported {count} readings to {output}", err=True)
