"""``sonocli simulate``: serve simulated wired M-Bus meters on a pseudo-terminal until Ctrl-C or SIGTERM."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from sonocli.errors import UsageError
from sonocli.registry import BAUD_RATES, baud_help

if TYPE_CHECKING:
    from sonocli.sim.pty_server import PtyEndpoint


@click.command("simulate")
@click.argument("segment", metavar="FILE|demo|sim://dlde?...|sim://sml?...")
@click.option("--pty", "use_pty", is_flag=True, default=True, help="Serve on a pseudo-terminal (the default).")
@click.option("--baud", type=int, default=2400, show_default=True, help=f"Pacing baud rate: {baud_help()}.")
@click.option("--link", "link", metavar="PATH", help="Also create a symlink to the pty at PATH.")
@click.option("--echo", is_flag=True, help="Echo every request, like some level converters.")
@click.option("-v", "--verbose", count=True,
              help="Log each request and its answer on stderr, one line each (-vv: with the bytes in hex).")
@click.pass_context
def simulate(ctx: click.Context, segment: str, use_pty: bool, baud: int, link: str | None, echo: bool,
             verbose: int) -> None:
    """Serve a segment (TOML/JSON file, or 'demo' for twelve meters built from real frames) on a pty.

    Prints the pty path, then answers M-Bus requests in real time (SND_NKE, REQ_UD2 with FCB,
    multi-telegram, selection with wildcards, broadcasts, collisions) so libmbus, sonocli or any other
    master can be pointed at it: e.g. `sonocli scan --port /dev/pts/5`. Runs until Ctrl-C or SIGTERM.
    sim://dlde?... serves IEC 62056-21 meters (modes A/B/C, slow=S, bcc=bad; the client's baud switch is
    followed), sim://sml?... an SML meter pushing real files (crc=bad, crc=message, truncate=N, unknown=1,
    every=N), with the query parameters of the sim:// ports (sonocli.sim.dlde, sonocli.sim.sml).
    With -v (here or before the command) each request is logged with the time, what it asked (type and
    address) and what the segment answered (ACK, RSP_UD of which meter, a collision, no answer).
    """
    import logging

    from sonocli.cli.context import CliContext
    from sonocli.sim.pty_server import PtyServer
    from sonocli.sim.wired import load_segment

    if segment.split("?", 1)[0].removeprefix("sim://") in ("dlde", "sml"):
        _serve_meter(segment, link)
        return
    if baud not in BAUD_RATES:  # the one list of M-Bus baud rates (as --baud of scan and MBUS_BAUDRATE)
        raise UsageError(f"--baud {baud} is not allowed; allowed: {baud_help()}")
    obj = ctx.find_object(CliContext)
    verbosity = verbose + (obj.verbosity if obj is not None else 0)
    if verbosity > 0:
        # the global -v/-q set the root logger's level; the request log is sonocli.sim's INFO (DEBUG: hex)
        logging.getLogger("sonocli.sim").setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    seg = load_segment(segment)
    seg.echo = echo or seg.echo
    _serve(PtyServer(seg, baud, link), f"{len(seg.meters)} meters at {baud} baud", link)


def _serve(server: PtyEndpoint, what: str, link: str | None) -> None:
    """Start ``server``, print its pty path (stdout) and what it serves (stderr), and serve until SIGTERM or
    Ctrl-C; the pty and its link are removed on the way out."""
    import signal
    import threading

    done = threading.Event()

    def stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    try:
        click.echo(server.path)
        click.echo(f"sonocli: serving {what} on {server.path}" + (f" (link {link})" if link else "")
                   + "; Ctrl-C to stop", err=True)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()


def _serve_meter(url: str, link: str | None) -> None:
    """``simulate sim://dlde?...`` / ``sim://sml?...``: the meter(s) behind a pty, in real time."""
    import urllib.parse

    from sonocli.sim.dlde import DldePtyServer

    parts = urllib.parse.urlsplit(url if "://" in url else f"sim://{url}")
    params = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
    try:
        if parts.netloc == "sml":
            from sonocli.sim.sml import peer_from_params as sml_peer

            peer: object = sml_peer(params)
        else:
            from sonocli.sim.dlde import peer_from_params as dlde_peer

            peer = dlde_peer(params)
    except ValueError as exc:
        raise UsageError(f"{url}: {exc}") from exc
    _serve(DldePtyServer(peer, link), parts.netloc, link)  # type: ignore[arg-type]  # a SimPeer with set_host_line
