"""Wired M-Bus decoding speed: sonocli against pymbusparser (Rust) and pyMeterBus, side by side.

The 76 libmbus test frames are decoded in a loop until ``--frames`` frames (default 100 000) have been
decoded by each library; every library must produce its records (pyMeterBus decodes lazily, so each
record's ``interpreted`` dict - value, unit, type, storage, tariff, device, function - is built).
The "+JSON" rows go one step further on both sides, from frame to JSON text (``sonocli decode --json``
against pyMeterBus's ``to_JSON()``), which is how the issue's pyMeterBus figure (~1.6 k/s) was taken.
Best of ``--repeat`` runs, frames per second of process CPU time (robust against other processes on a
busy machine; all decoders are single-threaded). Also measures the wall time of ``sonocli --help``
against ``python -c "import click"``.

    .venv/bin/python benchmarks/decode.py [--frames N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMES = sorted((ROOT / "tests" / "data" / "libmbus" / "test-frames").glob("*.hex"))


def load() -> list[bytes]:
    return [bytes.fromhex(p.read_text()) for p in FRAMES]


def sonocli_decoder() -> Callable[[bytes], object]:
    from sonocli.codecs.mbus_app import decode_wired

    return decode_wired


def pymbusparser_decoder() -> Callable[[bytes], object]:
    import pymbusparser

    def decode(frame: bytes) -> object:
        return pymbusparser.parse(frame, include_enrichment=False)

    return decode


def pymeterbus_decoder() -> Callable[[bytes], object]:
    import meterbus

    def decode(frame: bytes) -> object:
        telegram = meterbus.load(frame)
        # the same facts sonocli's MeterValue carries: value, unit, type, storage, tariff, subunit, function
        return [r.interpreted for r in telegram.records]

    return decode


def sonocli_json_decoder() -> Callable[[bytes], object]:
    """Frame to JSON text, as `sonocli decode --json` prints it (the issue's pyMeterBus figure is with JSON)."""
    import json

    from sonocli.codecs.mbus_app import decode_wired
    from sonocli.outputs.records_json import app_to_dict

    def decode(frame: bytes) -> object:
        return json.dumps(app_to_dict(decode_wired(frame)), default=str)

    return decode


def pymeterbus_json_decoder() -> Callable[[bytes], object]:
    import meterbus

    def decode(frame: bytes) -> object:
        return meterbus.load(frame).to_JSON()

    return decode


def rate(decode: Callable[[bytes], object], frames: list[bytes], total: int, repeat: int) -> tuple[float, int]:
    """Best frames/s over ``repeat`` runs of ``total`` frames; frames the library rejects are counted."""
    usable = []
    failures = 0
    for frame in frames:
        try:
            decode(frame)
            usable.append(frame)
        except Exception:  # a peer library rejecting a frame is a data point, not a crash
            failures += 1
    loops, rest = divmod(total, len(frames))
    batch = frames * loops + frames[:rest]
    best = 0.0
    for _ in range(repeat):
        start = time.process_time()
        for frame in batch:
            try:
                decode(frame)
            except Exception:
                continue
        best = max(best, len(batch) / (time.process_time() - start))
    return best, failures


def wall(argv: list[str], runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-pymeterbus", action="store_true", help="it needs ~30 s per 100 000 frames")
    args = parser.parse_args()
    frames = load()
    results: dict[str, float] = {}
    peers = [("sonocli", sonocli_decoder), ("pymbusparser", pymbusparser_decoder)]
    if not args.skip_pymeterbus:
        peers.append(("pyMeterBus", pymeterbus_decoder))
        peers.append(("sonocli+JSON", sonocli_json_decoder))
        peers.append(("pyMeterBus+JSON", pymeterbus_json_decoder))
    print(f"{len(frames)} frames looped to {args.frames} frames, best of {args.repeat}")
    for name, factory in peers:
        try:
            decode = factory()
        except ImportError as exc:
            print(f"{name:13s} not installed ({exc})")
            continue
        value, failures = rate(decode, frames, args.frames, args.repeat)
        results[name] = value
        note = f" ({failures} of {len(frames)} frames rejected)" if failures else ""
        print(f"{name:13s} {value:10,.0f} frames/s{note}")
    ours = results.get("sonocli", 0.0)
    for name in ("pymbusparser", "pyMeterBus"):
        if name in results:
            print(f"sonocli / {name}: {ours / results[name]:.2f}x")
    if "sonocli+JSON" in results and "pyMeterBus+JSON" in results:
        ratio = results["sonocli+JSON"] / results["pyMeterBus+JSON"]
        print(f"sonocli+JSON / pyMeterBus+JSON (frame to JSON text, both sides): {ratio:.2f}x")
    python = sys.executable
    click_time = wall([python, "-c", "import click"])
    help_time = wall([python, "-m", "sonocli", "--help"])
    print(f"python -c 'import click': {click_time * 1000:.1f} ms (median)")
    print(f"sonocli --help:           {help_time * 1000:.1f} ms (median), {help_time / click_time:.2f}x")


if __name__ == "__main__":
    main()
