"""The receiver on a real pseudo-terminal: a simulated stick serves the pty master, pyserial opens the slave."""

from __future__ import annotations

import os
import pty
import threading
import time
import tty

import pytest

from sonocli.codecs.dongles.amb8465 import Amb8465Driver
from sonocli.codecs.dongles.cul import CulDriver
from sonocli.codecs.dongles.im871a import Im871aDriver
from sonocli.engine.receiver import Heard, Receiver, ReceiverSettings, open_port
from sonocli.errors import ProtocolError
from sonocli.model import Interface, Meter
from sonocli.sim.peer import RealClock
from sonocli.sim.radio import RadioPeer


class PtyStick:
    """A RadioPeer on the master side of a pty, on the wall clock, in a thread."""

    def __init__(self, params: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.slave = slave
        self.clock = RealClock()
        self.peer = RadioPeer(params, self.clock)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import select

        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.005)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    return
                self.peer.receive(data, self.clock.now())
            out = self.peer.poll(self.clock.now())
            if out:
                os.write(self.master, out)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


@pytest.mark.parametrize("driver_cls", [Im871aDriver, Amb8465Driver, CulDriver])
def test_receiver_over_a_pty(driver_cls: type) -> None:
    driver = driver_cls()
    stick = PtyStick({"dongle": driver.name, "rate": "200", "count": "14", "garbage": "4", "badcrc": "6"})
    try:
        port = open_port(stick.path, driver)
        meters = [Meter(Interface.WMBUS, serial="28335519", key=bytes.fromhex("1AC8BD4C1421E45C4D11456AC0467A83"))]
        receiver = Receiver(driver, ReceiverSettings(mode="C1"), meters=meters)
        assert receiver.setup(port)[-1].startswith("set")
        heard: list[Heard] = []
        deadline = time.monotonic() + 20
        receiver.run(port, on_heard=heard.append, count=10, should_stop=lambda: time.monotonic() > deadline)
        port.close()
    finally:
        stick.close()
    good = [h for h in heard if h.meter is not None and not h.duplicate]
    assert len(good) >= 10
    assert any(h.reading is not None and len(h.reading.values) == 36 for h in heard)  # profile expanded
    assert receiver.stats.bad["garbage"] >= 2


def test_silent_stick_on_a_pty() -> None:
    stick = PtyStick({"dongle": "im871a", "mute": "1"})
    try:
        port = open_port(stick.path, Im871aDriver())
        receiver = Receiver(Im871aDriver(), ReceiverSettings(setup_timeout=0.3))
        with pytest.raises(ProtocolError, match="no answer"):
            receiver.setup(port)
        port.close()
    finally:
        stick.close()
