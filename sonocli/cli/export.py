"""``sonocli export csv|xml``: stored readings in the device's CSV or XML format, streamed.

The command parses its options and renders the result; the export itself is sonocli.engine.export. It
carries exactly what a report carries: the readings of active meters with their active values, as the meter
list configured them (a deactivated meter or value is not exported).

Readings come from ``<root>/ext/sonocli.db`` one chunk at a time and go straight to the output, so a year
of readings for hundreds of meters needs no more memory than a day's. ``-o FILE`` is written atomically
(temp file, fsync, rename): a reader never sees half an export.

Defaults come from chip.ini: MUC_PROTOCOL_VER (the guide allows 0–5 there; sonocli's writers know all eight
versions of Tables 20 and 22, so ``--protocol-version`` accepts 0–7) and MUC_SCALEVALUES.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from sonocli.cli.output import emit_json, progress
from sonocli.errors import UsageError


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


@click.command("export")
@click.argument("fmt", metavar="csv|xml")
@click.option("--protocol-version", "version_text", metavar="N", help="0-7 [chip.ini MUC_PROTOCOL_VER].")
@click.option("--from", "from_text", metavar="T", help="First reading time, ISO 8601 or Unix seconds (inclusive).")
@click.option("--to", "to_text", metavar="T", help="Last reading time, ISO 8601 or Unix seconds (inclusive).")
@click.option("--meter", metavar="ID", help="Only this meter: serial number or Device-ID (MAN-SERIAL-VV-MM).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (atomically).")
@click.option("--scale-values/--raw-values", default=None, help="Write value x scale [chip.ini MUC_SCALEVALUES].")
@click.option("--muc-id", metavar="HEX", help="XML MUC_ID (hex) [this machine's MUC-ID, see `service info`].")
@click.option("--iec-obis", is_flag=True, help="CSV: OBIS as A-B:C.D.E*F (IEC 62056-6-1), not A-B-C.D.E*F.")
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
    """Export stored readings as the device's CSV or XML report files, to stdout or -o FILE.

    As reports carry them: readings of active meters with their active values only.

    \b
    Examples:
      sonocli export csv --from 2024-01-01 --to 2024-01-31 -o jan.csv
      sonocli export xml --meter DFS-00127550-02-04 --protocol-version 7
    """
    from sonocli.cli.common import engine_for
    from sonocli.engine.export import Export, Selection

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
    version = parse_version(version_text) if version_text is not None else None

    engine = engine_for(ctx)
    try:
        job = Export(engine, fmt, Selection(since, until, meter), protocol_version=version, scale_values=scale_values,
                     muc_id=muc, obis_style="iec" if iec_obis else "figure22")
        if output is not None:
            with progress(f"export {job.fmt}", job.total) as sink:
                count = job.write_file(output, sink)
        else:
            count = job.write(sys.stdout.buffer)
    except BrokenPipeError:
        # The reader (head, less) went away: stop quietly like a Unix tool, not with a traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        ctx.exit(1)
    finally:
        engine.close()
    if output is not None:
        if as_json:
            emit_json({"format": job.fmt, "protocol_version": job.protocol_version, "readings": count,
                       "file": str(output)})
        else:
            click.echo(f"sonocli: exported {count} readings to {output}", err=True)
