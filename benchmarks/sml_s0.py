"""SML decoding and S0 counting speed.

* SML: the three real EMH eHZ files of tests/data/sml, cut from a byte stream, CRC checked, parsed by smllib
  and turned into records (``SmlStream`` + ``file_values``), files per second of process CPU time (best of
  ``--repeat``). A meter sends one file a second: this says how many meters one core could follow.
* S0: pulses counted through ``PulseCounter`` into the store (one committed SQLite transaction per batch, as
  the daemon's thread does), batches of ``--batch`` edges, pulses per second of wall time (fsync-bound).

    .venv/bin/python benchmarks/sml_s0.py [--files N] [--repeat R] [--batch B]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_sml(files: int, repeat: int) -> float:
    from sonocli.codecs.sml import SmlFile, SmlStream, file_values

    data = bytes.fromhex((ROOT / "tests" / "data" / "sml" / "EMH_eHZ-GW8E2A500AK2.hex").read_text().strip())
    rounds = max(1, files // 3)
    best = 0.0
    for _ in range(repeat):
        stream = SmlStream()
        start = time.process_time()
        n = 0
        for _ in range(rounds):
            for got in stream.feed(data):
                if isinstance(got, SmlFile):
                    file_values(got)
                    n += 1
        best = max(best, n / (time.process_time() - start))
    return best


class _Edges:
    def __init__(self, batch: int, batches: int) -> None:
        self.batch, self.left = batch, batches

    def wait(self, timeout: float) -> list[str]:
        if self.left <= 0:
            return []
        self.left -= 1
        return ["17"] * self.batch

    def close(self) -> None:
        pass


def bench_s0(batch: int, batches: int) -> float:
    from dataclasses import replace

    from sonocli.config.layout import init_root
    from sonocli.engine.core import Engine
    from sonocli.engine.s0 import PulseCounter
    from sonocli.model.values import Interface, Meter, ValueConfig

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        init_root(root)
        engine = Engine(root)
        try:
            engine.chip.set("S0_LINES", "1=17")
            meter = Meter(Interface.S0, serial="12345678", manufacturer="SLV", primary_address=1,
                          values=(ValueConfig(description="Energy", unit="Wh", value=0.0),))
            engine.update_meters(lambda ml: (replace(ml, meters=(meter,)), None))
            counter = PulseCounter(engine, _Edges(batch, batches))
            start = time.perf_counter()
            while counter.step(0.0):
                pass
            return counter.counted / (time.perf_counter() - start)
        finally:
            engine.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--batches", type=int, default=300)
    args = parser.parse_args()
    print(f"SML: {bench_sml(args.files, args.repeat):,.0f} files/s (CPU), 6 records each")
    print(f"S0: {bench_s0(args.batch, args.batches):,.0f} pulses/s committed (batch {args.batch})")


if __name__ == "__main__":
    main()
