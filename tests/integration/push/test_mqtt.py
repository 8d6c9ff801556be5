"""MQTT against a real Mosquitto on 127.0.0.1 (recipe: /work/shared/TESTING.md section 6).

One broker per test module with two listeners: plain TCP with user/password, and TLS (the test CA) that
requires a client certificate. Readings arrive on ``{MQTT_TOPIC}/{device_id}`` with the JSON of
``readout --json``; a broker down for several report cycles loses nothing; Home Assistant discovery
follows the meter list; three daemons with distinct MUC-IDs publish into one broker, across a restart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.engine.core import Engine
from tests.conftest import need_exe
from tests.integration.push.conftest import Pki, free_port, make_root, wait_port

USER, PASSWORD = "meter", "s3cret"
START = 1_750_000_000.0  # virtual UNIX time for the daemons


class Mosquitto:
    """A mosquitto process on two fresh ports; ``stop``/``start`` restart it on the same ports."""

    def __init__(self, directory: Path, pki: Pki) -> None:
        self.exe = need_exe("mosquitto", "mosquitto")
        passwd = need_exe("mosquitto_passwd", "mosquitto")
        self.dir = directory
        self.port = free_port()
        self.tls_port = free_port()
        pw = directory / "passwd"
        subprocess.run([passwd, "-b", "-c", str(pw), USER, PASSWORD], check=True, capture_output=True)
        pw.chmod(0o644)
        self.cfg = directory / "mosquitto.conf"
        self.cfg.write_text(
            "user root\npersistence false\nlog_dest stderr\nper_listener_settings true\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
            f"listener {self.tls_port} 127.0.0.1\nallow_anonymous false\n"
            f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
            "require_certificate true\nuse_identity_as_username true\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = (self.dir / "broker.log").open("ab")
        self.proc = subprocess.Popen([self.exe, "-c", str(self.cfg)], stdout=log, stderr=log)
        wait_port(self.port, self.proc)
        wait_port(self.tls_port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Mosquitto]:
    peer = Mosquitto(tmp_path_factory.mktemp("mosquitto"), pki)
    yield peer
    peer.stop()


class Subscriber:
    """A paho client that keeps every message of ``topics`` (and re-subscribes after a broker restart)."""

    def __init__(self, port: int, *topics: str) -> None:
        from paho.mqtt.client import Client
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # every topic's SUBACK since the last (re)connect
        pending: set[int] = set()
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{os.getpid()}-{time.monotonic_ns()}")
        self.client.username_pw_set(USER, PASSWORD)
        self.client.reconnect_delay_set(0.1, 0.5)

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            self.subscribed.clear()
            with self.lock:
                pending.clear()
                for topic in topics:
                    pending.add(client.subscribe(topic, qos=1)[1])
            self.connected.set()

        def on_subscribe(client: Any, userdata: Any, mid: int, *args: Any) -> None:
            with self.lock:
                pending.discard(mid)
                done = not pending
            if done:
                self.subscribed.set()

        def on_disconnect(*args: Any) -> None:
            self.connected.clear()
            self.subscribed.clear()

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            with self.lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(5) and self.subscribed.wait(5)

    def wait_connected(self) -> None:
        """Until the subscriber is connected again *and* its subscriptions are acknowledged: a message
        published before the SUBACK would never reach it (a clean session keeps nothing)."""
        assert self.connected.wait(30) and self.subscribed.wait(30), "subscriber did not reconnect"

    def readings(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return [(t, json.loads(p)) for t, p, _r in self.messages
                    if t.startswith(prefix) and not t.endswith("/status") and p]

    def payloads(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _r in self.messages if t == topic]

    def payloads_under(self, prefix: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _r in self.messages if t.startswith(prefix)]

    def latest_under(self, prefix: str) -> dict[str, bytes]:
        with self.lock:
            return {t: p for t, p, _r in self.messages if t.startswith(prefix)}

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("timed out waiting for MQTT messages")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_settings(broker: Mosquitto, **extra: Any) -> dict[str, Any]:
    return {"MQTT_ENABLE": 1, "MQTT_IP": "127.0.0.1", "MQTT_PORT": broker.port, "MQTT_USER": USER,
            "MQTT_PASS": PASSWORD, **extra}


def run(root: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--root", str(root), *args], catch_exceptions=False)


def stored_messages(root: Path) -> list[dict[str, Any]]:
    """What the root's store says MQTT should carry: the configured part of every stored reading, in order."""
    from sonocli.engine.messages import reading_message

    engine = Engine(root)
    try:
        return [reading_message(r) for r in engine.iter_configured(engine.store.iter_readings(after_id=0))]
    finally:
        engine.close()


def outbox_waiting(root: Path, channel: str = "mqtt") -> int:
    engine = Engine(root)
    try:
        return len(engine.outbox.items(channel=channel))
    finally:
        engine.close()


@pytest.fixture(autouse=True)
def _fresh_sessions() -> Iterator[None]:
    from sonocli.push.mqtt import close_sessions

    yield
    close_sessions()


# --------------------------------------------------------------------------------------------- delivery
def test_readings_arrive_on_the_device_topic_as_readout_json(tmp_path: Path, demo_meter_list: Path,
                                                             broker: Mosquitto) -> None:
    root = make_root(tmp_path / "r", demo_meter_list, MUC_ID="5a0001", **mqtt_settings(broker))
    sub = Subscriber(broker.port, "sonocli/5a0001/#")
    try:
        readout = run(root, "readout", "--all", "--json")
        assert readout.exit_code == 0, readout.output
        printed = json.loads(readout.stdout)
        result = run(root, "push", "--once")
        assert result.exit_code == 0, result.output
        sub.wait_for(lambda: len(sub.readings("sonocli/5a0001/")) >= len(printed))
        got = sub.readings("sonocli/5a0001/")
    finally:
        sub.close()
    engine = Engine(root)
    active = {m.device_id: {i for i, v in enumerate(m.values) if v.active} for m in engine.meter_list().meters}
    engine.close()
    assert len(got) == len(printed) == 12
    for (topic, message), shown in zip(got, printed, strict=True):
        assert topic == f"sonocli/5a0001/{message['meter']['device_id']}"
        # the object readout --json prints, less readout's own "limited", with the records every output
        # carries: those of active value entries (readout also shows hidden timestamp records, index -1)
        device = shown["meter"]["device_id"]
        wanted = {k: v for k, v in shown.items() if k != "limited"}
        wanted["records"] = [r for r in shown["records"] if r["index"] in active[device]]
        assert message == wanted
        assert wanted["records"]
    assert outbox_waiting(root) == 0


def test_tls_with_client_certificate(tmp_path: Path, demo_meter_list: Path, broker: Mosquitto, pki: Pki) -> None:
    root = make_root(tmp_path / "r", demo_meter_list, MUC_ID="5a0002", MQTT_ENABLE=1,
                     MQTT_IP="mqtts://127.0.0.1", MQTT_PORT=broker.tls_port, MQTT_ROOT_CERT_FILE=str(pki.ca),
                     MQTT_CLI_CERT_FILE=str(pki.client_cert), MQTT_CLI_KEY_FILE=str(pki.client_key))
    from tests.integration.push.conftest import read_demo_meters

    read_demo_meters(root)
    sub = Subscriber(broker.port, "sonocli/5a0002/#")
    try:
        result = run(root, "push", "--test")
        assert result.exit_code == 0, result.output
        assert "ok   mqtt   tls" in result.output and "ok   mqtt   confirm" in result.output
        sub.wait_for(lambda: len(sub.readings("sonocli/5a0002/")) >= 12)
    finally:
        sub.close()
    assert outbox_waiting(root) == 0  # the Test button passes the outbox by


def test_broker_down_for_several_cycles_loses_nothing_and_keeps_order(tmp_path: Path, demo_meter_list: Path,
                                                                       tmp_path_factory: pytest.TempPathFactory,
                                                                       pki: Pki) -> None:
    own = Mosquitto(tmp_path_factory.mktemp("mosquitto-outage"), pki)  # this test stops its broker
    root = make_root(tmp_path / "r", demo_meter_list, MUC_ID="5a0003", **mqtt_settings(own))
    sub = Subscriber(own.port, "sonocli/5a0003/#")
    try:
        for _cycle in range(2):
            read_and_push(root)
        own.stop()
        for _cycle in range(3):
            result = read_and_push(root, ok=False)
            assert "mqtt" in result.output and "connect" in result.output
        assert outbox_waiting(root) == 3
        own.start()
        sub.wait_connected()
        read_and_push(root)
        expected = stored_messages(root)
        sub.wait_for(lambda: len(sub.readings("sonocli/5a0003/")) >= len(expected))
        time.sleep(0.3)
        got = [m for _t, m in sub.readings("sonocli/5a0003/")]
    finally:
        sub.close()
        own.stop()
    assert len(expected) == 6 * 12
    assert got == expected  # every reading once, in the order it was taken
    assert outbox_waiting(root) == 0


def read_and_push(root: Path, *, ok: bool = True) -> Any:
    from tests.integration.push.conftest import read_demo_meters

    assert read_demo_meters(root) == 12
    result = run(root, "push", "--once")
    assert (result.exit_code == 0) is ok, result.output
    return result


# --------------------------------------------------------------------------------- Home Assistant discovery
def test_discovery_follows_the_active_values(tmp_path: Path, demo_meter_list: Path, broker: Mosquitto) -> None:
    root = make_root(tmp_path / "r", demo_meter_list, MUC_ID="5a0004", MQTT_HA_DISCOVERY=1, **mqtt_settings(broker))
    engine = Engine(root)
    meters = engine.meter_list().meters
    engine.close()
    active = {(m.device_id, i) for m in meters if m.active for i, v in enumerate(m.values) if v.active}
    node = "homeassistant/sensor/sonocli_5a0004/"
    sub = Subscriber(broker.port, node + "#")
    try:
        read_and_push(root)
        sub.wait_for(lambda: len(sub.payloads_under(node)) >= len(active))
        configs = {t: json.loads(p) for t, p in sub.latest_under(node).items()}
        assert len(configs) == len(active)
        energy = next(c for c in configs.values() if c.get("unit_of_measurement") == "Wh"
                      and c.get("state_class") == "total_increasing")
        assert energy["device_class"] == "energy"
        assert energy["state_topic"].startswith("sonocli/5a0004/")
        assert energy["availability_topic"] == "sonocli/5a0004/status"
        assert "identifiers" in energy["device"]
        temperature = next(c for c in configs.values() if c.get("unit_of_measurement") == "°C")
        assert temperature["device_class"] == "temperature"
        # deactivate one value: its config is removed with an empty retained message at the next report
        first = meters[0]
        result = run(root, "meters", "deactivate", f"{first.device_id}/1")  # value refs count from 1
        assert result.exit_code == 0, result.output
        topic = f"{node}{first.device_id}_0/config"
        before = len(sub.payloads(topic))
        read_and_push(root)
        sub.wait_for(lambda: len(sub.payloads(topic)) > before)
        assert sub.payloads(topic)[-1] == b""
    finally:
        sub.close()
    # a second subscriber sees the retained state: every active value but the one removed
    late = Subscriber(broker.port, node + "#")
    try:
        time.sleep(0.5)
        retained = {t for t, p in late.latest_under(node).items() if p}
    finally:
        late.close()
    assert len(retained) == len(active) - 1 and topic not in retained


# ------------------------------------------------------------------------------------------------- fleet
def daemon(root: Path, start: float, until: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sonocli", "--root", str(root), "serve-daemon", "--no-wireless",
         "--virtual-clock", str(start), "--until", str(until)],
        capture_output=True, timeout=120,
    )


def test_three_daemons_into_one_broker_across_a_restart(tmp_path: Path, demo_meter_list: Path,
                                                        tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> None:
    own = Mosquitto(tmp_path_factory.mktemp("mosquitto-fleet"), pki)
    roots = [make_root(tmp_path / f"muc{n}", demo_meter_list, MUC_ID=f"f1ee{n}", **mqtt_settings(own))
             for n in range(3)]
    sub = Subscriber(own.port, "fleet/#")
    for root in roots:
        assert run(root, "config", "set", "MQTT_TOPIC", "fleet/{muc_id}").exit_code == 0
    try:
        def all_daemons(start: float, until: float) -> None:
            threads = [threading.Thread(target=lambda r=r: results.append(daemon(r, start, until))) for r in roots]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        results: list[subprocess.CompletedProcess[bytes]] = []
        all_daemons(START, START + 1800)  # two report cycles, broker up
        own.stop()
        all_daemons(START + 1800, START + 4500)  # three cycles, broker down: reports wait in the outboxes
        assert all(outbox_waiting(r) >= 2 for r in roots)
        own.start()
        sub.wait_connected()
        all_daemons(START + 4500, START + 6300)  # broker back: the backlog and the new cycles arrive
        expected = {f"fleet/f1ee{n}/": stored_messages(root) for n, root in enumerate(roots)}
        sub.wait_for(lambda: all(len(sub.readings(p)) >= len(e) for p, e in expected.items()), timeout=30)
        time.sleep(0.3)
        for prefix, wanted in expected.items():
            got = [m for _t, m in sub.readings(prefix)]
            assert len(wanted) >= 5 * 12
            assert got == wanted, prefix  # every reading of every daemon once, in order
        for n, root in enumerate(roots):
            assert outbox_waiting(root) == 0
            status = sub.payloads(f"fleet/f1ee{n}/status")
            assert status and status[0] == b"online" and status[-1] == b"offline"
    finally:
        sub.close()
        own.stop()
    for result in results:
        assert result.returncode == 0, result.stderr.decode()[-2000:]


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["unreachable", "bad-cert", "wrong-password"])
def test_broker_problems_are_one_line_and_readings_stay_queued(case: str, tmp_path: Path, demo_meter_list: Path,
                                                              broker: Mosquitto, pki: Pki) -> None:
    settings = mqtt_settings(broker)
    if case == "unreachable":
        settings["MQTT_PORT"] = free_port()
    elif case == "bad-cert":
        settings.update(MQTT_IP="mqtts://127.0.0.1", MQTT_PORT=broker.tls_port, MQTT_ROOT_CERT_FILE=str(pki.other_ca),
                        MQTT_CLI_CERT_FILE=str(pki.client_cert), MQTT_CLI_KEY_FILE=str(pki.client_key))
    else:
        settings["MQTT_PASS"] = "wrong"
    root = make_root(tmp_path / "r", demo_meter_list, **settings)
    from tests.integration.push.conftest import read_demo_meters

    read_demo_meters(root)
    result = run(root, "push", "--once")
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("sonocli: error")]
    assert len(errors) == 1, result.stderr
    step = {"unreachable": "connect", "bad-cert": "tls", "wrong-password": "login"}[case]
    assert f"mqtt: {step}:" in errors[0]
    if case == "bad-cert":
        assert "verify" in errors[0]
    assert outbox_waiting(root) == 1
    test = run(root, "push", "--test")
    assert test.exit_code != 0 and f"FAIL mqtt   {step}" in test.output


@pytest.mark.parametrize("topic", ["sonocli/+/x", "sonocli/#", "$SYS/x", "a//b", "sonocli/{mucid}"])
def test_a_topic_that_cannot_be_published_to_is_a_usage_error(topic: str, tmp_path: Path, demo_meter_list: Path,
                                                              broker: Mosquitto) -> None:
    root = make_root(tmp_path / "r", demo_meter_list, MQTT_TOPIC=topic, **mqtt_settings(broker))
    from tests.integration.push.conftest import read_demo_meters

    read_demo_meters(root)
    test = run(root, "push", "--test")
    assert test.exit_code == 2
    assert "MQTT_TOPIC" in test.stderr and len(test.stderr.strip().splitlines()) <= 2
    once = run(root, "push", "--once")  # the daemon's path: the reading stays in the outbox
    assert once.exit_code != 0 and "MQTT_TOPIC" in once.stderr
    assert outbox_waiting(root) == 1


def test_qos_out_of_range_is_refused(tmp_path: Path, demo_meter_list: Path, broker: Mosquitto) -> None:
    root = make_root(tmp_path / "r", demo_meter_list, **mqtt_settings(broker))
    result = run(root, "config", "set", "MQTT_QOS", "3")
    assert result.exit_code == 2 and "MQTT_QOS" in result.stderr
