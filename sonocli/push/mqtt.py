"""MQTT into an existing broker (Mosquitto, EMQX, HiveMQ): sonocli's own channel, chip.ini MQTT_*.

A report is JSON Lines (sonocli.engine.messages): one reading per line, published in order as one message
to ``{MQTT_TOPIC}/{device_id}`` at MQTT_QOS. :meth:`MqttChannel.send` returns only when the broker has
acknowledged every message (PUBACK/PUBCOMP at QoS 1/2), so the outbox marks a report delivered only then;
a broker that is down keeps the reports in the outbox, in order. A report that failed half-way is sent
again whole: at QoS ≥ 1 a consumer may see a reading twice after a broker failure (MQTT's "at least
once"), never zero times. Each message carries ``meter.device_id`` and ``taken_at`` to de-duplicate on.

The connection is kept open between reports (one per root and broker, module-level): ``{MQTT_TOPIC}/status``
is ``online`` (retained) while the daemon is connected and ``offline`` when it stops or dies (a clean exit
publishes it; otherwise the broker publishes the last will). Only the daemon's process — the one whose PID
is in the root's ``ext/sonocli-daemon.pid`` — owns the status topic, so a ``push --test`` beside a running
daemon never marks the concentrator offline.

Home Assistant discovery (MQTT_HA_DISCOVERY=1): the engine computes one retained config message per active
value from the meter list (sonocli.engine.ha_discovery); this channel publishes them before the readings:
all of them on each new connection (a broker without persistence forgets retained messages), afterwards
only those that changed. What was published is remembered in ``ext/mqtt-discovery.json`` (per broker), so
a value deactivated or a meter deleted — even across a restart — gets its empty retained message, which
removes the entity from Home Assistant.

paho-mqtt is imported only when a connection is made.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sonocli import logs
from sonocli.errors import ConfigError, PushError
from sonocli.model.valueclass import field, valueclass
from sonocli.push.base import Channel, ConfigGet, Report, StepObserver, as_int, as_text, split_host

log = logs.logger(__name__)

DISCOVERY_PREFIX = "homeassistant"
ONLINE = b"online"
OFFLINE = b"offline"
PID_FILE = "sonocli-daemon.pid"  # sonocli.daemon.runner.PID_FILE (the push layer does not import the daemon)
MEMORY_FILE = "mqtt-discovery.json"
CONNECT_TIMEOUT = 10.0
ACK_TIMEOUT = 30.0  # without any acknowledgement for this long the broker counts as gone
KEEPALIVE = 60


@valueclass(frozen=True)
class Discovery:
    """Home Assistant discovery of a meter list: retained config per topic, and the topics of values that
    are in the list but inactive (removed with an empty retained message when no memory says otherwise)."""

    configs: dict[str, bytes] = field(default_factory=dict)
    retired: tuple[str, ...] = ()


DiscoverySource = Callable[[str], Discovery]  # base topic -> discovery (the engine builds it)


# -- configuration ---------------------------------------------------------------------------------------
_TOPIC_BAD = re.compile(r"[+#\x00]")


def topic_base(template: str, muc_id: str) -> str:
    """MQTT_TOPIC with ``{muc_id}`` filled in, checked for what a publish topic may not contain.

    ConfigError (exit 2) for an empty topic, wildcards ``+``/``#``, NUL, an unknown ``{placeholder}``, a
    leading ``$`` (broker-reserved), empty levels at either end, or more than 65535 bytes.
    """
    text = template.strip()
    name = "MQTT_TOPIC"
    if not text:
        raise ConfigError(f"{name} is empty", hint="e.g. sonocli config set MQTT_TOPIC 'sonocli/{muc_id}'")
    topic = text.replace("{muc_id}", muc_id)
    if _TOPIC_BAD.search(topic):
        raise ConfigError(f"{name}={template!r}: wildcards + and # (and NUL) are not allowed in a topic to "
                          "publish to", hint="use plain levels, e.g. sonocli/{muc_id}")
    if "{" in topic or "}" in topic:
        raise ConfigError(f"{name}={template!r}: unknown placeholder; allowed: {{muc_id}}")
    if topic.startswith("$"):
        raise ConfigError(f"{name}={template!r}: topics starting with $ are reserved for the broker")
    if topic.startswith("/") or topic.endswith("/") or "//" in topic:
        raise ConfigError(f"{name}={template!r}: empty topic level (a / at either end or //)")
    if len(topic.encode("utf-8")) > 65000:
        raise ConfigError(f"{name}: longer than an MQTT topic may be")
    return topic


def node_id(muc_id: str) -> str:
    """The discovery node of one concentrator (``homeassistant/sensor/<node>/...``)."""
    return f"sonocli_{muc_id.lower()}"


def object_id(text: str) -> str:
    """``text`` with what Home Assistant's discovery topics do not allow replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def discovery_topic(muc_id: str, device_id: str, index: int) -> str:
    return f"{DISCOVERY_PREFIX}/sensor/{node_id(muc_id)}/{object_id(device_id)}_{index}/config"


@valueclass(frozen=True)
class Settings:
    """The MQTT_* group, checked."""

    host: str
    port: int
    tls: bool
    user: str
    password: str
    base: str
    qos: int
    retain: bool
    discovery: bool
    cafile: Path | None
    certfile: Path | None
    keyfile: Path | None

    @property
    def status_topic(self) -> str:
        return f"{self.base}/status"

    @property
    def broker(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def key(self) -> tuple[Any, ...]:
        return (self.host, self.port, self.tls, self.user, self.password, self.base, self.cafile, self.certfile,
                self.keyfile)

    @classmethod
    def from_config(cls, get: ConfigGet, root: Path, muc_id: str) -> Settings:
        raw = as_text(get("MQTT_IP")).strip()
        if not raw:
            raise ConfigError("MQTT_ENABLE=1 but MQTT_IP is empty",
                              hint="sonocli config set MQTT_IP broker.example.net (mqtts://host for TLS)")
        scheme, host, port = split_host(raw, 0)
        if scheme not in ("", "mqtt", "mqtts", "ssl", "tls"):
            raise ConfigError(f"MQTT_IP={raw!r}: unknown scheme {scheme!r}; allowed: mqtt://, mqtts://")
        if not host:
            raise ConfigError(f"MQTT_IP={raw!r}: no host name")
        tls = scheme in ("mqtts", "ssl", "tls")
        port = as_int(get("MQTT_PORT"), 0) or port or (8883 if tls else 1883)
        qos = as_int(get("MQTT_QOS"), 1)
        if qos not in (0, 1, 2):
            raise ConfigError(f"MQTT_QOS={qos}: allowed: 0, 1, 2")
        ca, cert, key = (as_text(get(n)).strip() for n in
                         ("MQTT_ROOT_CERT_FILE", "MQTT_CLI_CERT_FILE", "MQTT_CLI_KEY_FILE"))
        if bool(cert) != bool(key):
            raise ConfigError("MQTT_CLI_CERT_FILE and MQTT_CLI_KEY_FILE go together: set both or neither")
        return cls(
            host=host,
            port=port,
            tls=tls,
            user=as_text(get("MQTT_USER")),
            password=as_text(get("MQTT_PASS")),
            base=topic_base(as_text(get("MQTT_TOPIC")), muc_id),
            qos=qos,
            retain=bool(get("MQTT_RETAIN")),
            discovery=bool(get("MQTT_HA_DISCOVERY")),
            cafile=cert_path(root, ca) if ca else None,
            certfile=cert_path(root, cert) if cert else None,
            keyfile=cert_path(root, key) if key else None,
        )


def cert_path(root: Path, text: str) -> Path:
    """A certificate file of MQTT_*_FILE: an absolute path as it is when it exists, else inside the root as
    the device's paths are (``/app/x.pem`` → ``<root>/app/x.pem``); a relative name is in ``<root>/app``."""
    path = Path(text)
    if path.is_absolute():
        return path if path.exists() else root / text.lstrip("/")
    return root / "app" / path


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the broker (system CAs, or MQTT_ROOT_CERT_FILE) and sends the client certificate if set."""
    for what, path in (("MQTT_ROOT_CERT_FILE", settings.cafile), ("MQTT_CLI_CERT_FILE", settings.certfile),
                       ("MQTT_CLI_KEY_FILE", settings.keyfile)):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{what}: {path} is missing")
    context = ssl.create_default_context(cafile=str(settings.cafile) if settings.cafile else None)
    if settings.certfile is not None and settings.keyfile is not None:
        context.load_cert_chain(str(settings.certfile), str(settings.keyfile))
    return context


def daemon_owns(root: Path) -> bool:
    """Whether this process is the root's serve-daemon (its PID is in ext/sonocli-daemon.pid)."""
    try:
        return (root / "ext" / PID_FILE).read_text(encoding="ascii").strip() == str(os.getpid())
    except (OSError, UnicodeDecodeError):
        return False


def parse_report(payload: bytes, base: str) -> list[tuple[str, bytes]]:
    """(topic, message) per JSON line of a report, in order: ``{base}/{meter.device_id}``."""
    out: list[tuple[str, bytes]] = []
    for line in payload.splitlines():
        if not line.strip():
            continue
        device_id = str(json.loads(line)["meter"]["device_id"])
        out.append((f"{base}/{device_id}", line))
    return out


# -- the connection, kept between reports -------------------------------------------------------------------
class Session:
    """One paho client connected to one broker, with its network thread (paho's ``loop_start``)."""

    def __init__(self, settings: Settings, client_id: str, owner: bool) -> None:
        self.settings = settings
        self.client_id = client_id
        self.owner = owner
        self.client: Any = None
        self.connack = threading.Event()
        self.changed = threading.Condition()
        self.connect_error: str | None = None
        self.connected = False
        self.disconnect_reason: str | None = None
        self.failed: dict[int, str] = {}  # mid -> PUBACK/PUBREC reason of a refused message (MQTT 5)
        self.max_packet: int | None = None
        self.fresh = True  # discovery not yet published on this connection
        self.lock = threading.Lock()  # one report at a time on a connection

    # paho callbacks (its network thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.connect_error = str(reason)
        else:
            self.connected = True
            self.fresh = True
            self.max_packet = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
            if self.owner:
                client.publish(self.settings.status_topic, ONLINE, qos=1, retain=True)
        self.connack.set()
        with self.changed:
            self.changed.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected = False
        self.disconnect_reason = str(reason)
        self.connack.set()
        with self.changed:
            self.changed.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.failed[mid] = str(reason)
        with self.changed:
            self.changed.notify_all()

    def open(self, tls: ssl.SSLContext | None) -> None:
        """TCP and TLS (raises what the socket raises), then the CONNECT; :meth:`wait_connack` waits for it."""
        try:
            from paho.mqtt.client import Client
            from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
        except ImportError:
            raise PushError("paho-mqtt is not installed", channel="mqtt", step="connect",
                            hint="pip install 'paho-mqtt>=2.1' into sonocli's environment") from None

        client = Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=MQTTProtocolVersion.MQTTv5)
        client.connect_timeout = CONNECT_TIMEOUT
        client.reconnect_delay_set(1, 30)
        if self.settings.user:
            client.username_pw_set(self.settings.user, self.settings.password or None)
        if tls is not None:
            client.tls_set_context(tls)
        if self.owner:
            client.will_set(self.settings.status_topic, OFFLINE, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        client.connect(self.settings.host, self.settings.port, keepalive=KEEPALIVE)
        client.loop_start()

    def wait_connack(self) -> None:
        if not self.connack.wait(CONNECT_TIMEOUT):
            raise TimeoutError("the broker did not answer the MQTT CONNECT")
        if self.connect_error is not None:
            raise PermissionError(f"the broker refused the login: {self.connect_error}")
        if not self.connected:
            raise ConnectionError(f"the broker closed the connection before accepting it ({self.disconnect_reason}"
                                  "; a client certificate it does not accept?)")

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> Any:
        from paho.mqtt.client import error_string
        from paho.mqtt.enums import MQTTErrorCode

        if self.max_packet is not None and len(payload) + len(topic.encode()) + 16 > self.max_packet:
            raise PushError(f"a message of {len(payload)} bytes is over the broker's limit of {self.max_packet} "
                            "bytes", channel="mqtt", step="upload",
                            hint="raise the broker's max_packet_size (the reading stays in the outbox)")
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish failed: {error_string(info.rc)}")
        return info

    def wait_acks(self, infos: list[Any], abort: threading.Event) -> None:
        """Until the broker acknowledged every message; a silence of ACK_TIMEOUT, a disconnect or a refusal
        (MQTT 5 reason code) is an error."""
        pending = list(infos)
        deadline = time.monotonic() + ACK_TIMEOUT
        with self.changed:
            while True:
                done = [i for i in pending if i.is_published()]
                if done:
                    deadline = time.monotonic() + ACK_TIMEOUT
                pending = [i for i in pending if not i.is_published()]
                for info in infos:
                    if info.mid in self.failed:
                        raise ConnectionError(f"the broker refused a message: {self.failed.pop(info.mid)}")
                if not pending:
                    return
                if abort.is_set():
                    raise ConnectionAbortedError("aborted by the watchdog")
                if not self.connected:
                    raise ConnectionResetError(f"the broker closed the connection ({self.disconnect_reason}); "
                                               f"{len(pending)} message(s) not acknowledged")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(pending)} message(s) not acknowledged by the broker")
                self.changed.wait(0.2)

    def kill(self) -> None:
        """Cut the connection at once (the watchdog): the waiting side sees a disconnect."""
        sock = self.client.socket() if self.client is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self, *, clean: bool = True) -> None:
        """Disconnect; the daemon's session first says ``offline`` (a clean DISCONNECT sends no last will)."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if clean and self.connected and self.owner:
                info = client.publish(self.settings.status_topic, OFFLINE, qos=1, retain=True)
                with contextlib.suppress(Exception):
                    info.wait_for_publish(2.0)
            if clean and self.connected:
                client.disconnect()
        finally:
            client.loop_stop()
            if not clean:  # no DISCONNECT: the broker publishes the last will (the daemon's ``offline``)
                sock = client.socket()
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
            self.connected = False


_SESSIONS: dict[str, Session] = {}
_SESSIONS_LOCK = threading.Lock()


def close_sessions() -> None:
    """Close every kept connection (at exit; tests between daemons)."""
    with _SESSIONS_LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
    for session in sessions:
        with contextlib.suppress(Exception):
            session.close()


atexit.register(close_sessions)


# -- the channel ---------------------------------------------------------------------------------------------
class MqttChannel(Channel):
    name = "mqtt"
    format = "json"

    def __init__(self, get: ConfigGet, root: Path, *, observer: StepObserver | None = None, muc_id: str = "0",
                 discovery: DiscoverySource | None = None) -> None:
        super().__init__(get, root, observer=observer)
        self.muc_id = muc_id
        self.discovery = discovery
        self._session: Session | None = None

    def settings(self) -> Settings:
        return Settings.from_config(self.get, self.root, self.muc_id)

    def describe(self) -> str:
        try:
            s = self.settings()
        except ConfigError as exc:
            return f"mqtt (not configured: {exc.message})"
        return f"{s.broker} topic {s.base}/<device_id>"

    def report_name(self, created: int, index: int) -> str:
        return f"mqtt_{created}_{index}"

    def hint(self, step: str, exc: BaseException) -> str | None:
        if step == "tls":
            return "check MQTT_ROOT_CERT_FILE (the broker's CA) and MQTT_CLI_CERT_FILE/MQTT_CLI_KEY_FILE"
        if step == "login":
            return "check MQTT_USER and MQTT_PASS, and the broker's ACL"
        if step == "connect":
            return "check MQTT_IP, MQTT_PORT and the firewall; the readings stay in the outbox"
        return super().hint(step, exc)

    def abort(self) -> None:
        super().abort()
        if self._session is not None:
            self._session.kill()

    def _key(self) -> str:
        return str(self.root.resolve())

    def _connect(self, settings: Settings) -> Session:
        """The kept connection of this root, or a new one (steps resolve, connect, tls, login)."""
        key = self._key()
        with _SESSIONS_LOCK:
            session = _SESSIONS.get(key)
        if session is not None and session.settings.key() == settings.key() and session.connected:
            return session
        if session is not None:  # other settings (SIGHUP) or the connection dropped: start afresh
            with _SESSIONS_LOCK:
                _SESSIONS.pop(key, None)
            session.close()
        owner = daemon_owns(self.root)
        client_id = f"sonocli-{self.muc_id}" if owner else f"sonocli-{self.muc_id}-{os.getpid()}"
        session = Session(settings, client_id, owner)
        self.resolve(settings.host, settings.port)
        context: ssl.SSLContext | None = None
        if settings.tls:
            with self.step("tls", "verify the broker" + (", client certificate" if settings.certfile else "")):
                context = tls_context(settings)
        tls_error: BaseException | None = None
        with self.step("connect", f"{settings.host}:{settings.port}"):
            try:
                session.open(context)
            except ssl.SSLError as exc:
                tls_error = exc
            except BaseException:
                session.close(clean=False)
                raise
        if tls_error is not None:
            session.close(clean=False)
            with self.step("tls"):
                raise tls_error
        try:
            with self.step("login", settings.user or "(anonymous)"):
                session.wait_connack()
        except PushError:
            session.close(clean=False)
            raise
        with _SESSIONS_LOCK:
            _SESSIONS[key] = session
        return session

    def send(self, report: Report) -> None:
        settings = self.settings()  # a ConfigError (exit 2) before anything is sent
        messages = parse_report(report.payload, settings.base)
        session = self._connect(settings)
        self._session = session
        try:
            with session.lock:
                infos: list[Any] = []
                memory: dict[str, str] | None = None
                with self.step("upload", f"{len(messages)} message(s) to {settings.base}/<device_id>"):
                    if settings.discovery and self.discovery is not None:
                        discovery_infos, memory = self._publish_discovery(session, settings)
                        infos.extend(discovery_infos)
                    for topic, payload in messages:
                        infos.append(session.publish(topic, payload, settings.qos, settings.retain))
                with self.step("confirm", "acknowledged by the broker" if settings.qos else "written (QoS 0)"):
                    session.wait_acks(infos, self._abort)
                if memory is not None:
                    self._remember(settings, memory)
                    session.fresh = False
        except BaseException:
            with _SESSIONS_LOCK:
                if _SESSIONS.get(self._key()) is session:
                    _SESSIONS.pop(self._key())
            session.close(clean=False)
            raise
        finally:
            self._session = None

    # -- Home Assistant discovery ------------------------------------------------------------------------------
    def _memory_path(self) -> Path:
        return self.root / "ext" / MEMORY_FILE

    def _recall(self, settings: Settings) -> dict[str, str] | None:
        """Topic -> payload hash published to this broker before; None when nothing is known."""
        try:
            data = json.loads(self._memory_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("broker") != settings.broker or data.get("base") != settings.base:
            return None
        topics = data.get("topics")
        return {str(k): str(v) for k, v in topics.items()} if isinstance(topics, dict) else None

    def _remember(self, settings: Settings, topics: dict[str, str]) -> None:
        from sonocli.fsutil import atomic_write_text

        path = self._memory_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"broker": settings.broker, "base": settings.base, "topics": topics},
                                           indent=1, sort_keys=True) + "\n")

    def _publish_discovery(self, session: Session, settings: Settings) -> tuple[list[Any], dict[str, str]]:
        """Config messages that are new or changed (all of them on a fresh connection), empty retained
        messages for values no longer active; returns the publishes and the memory to keep once acked."""
        assert self.discovery is not None
        wanted = self.discovery(settings.base)
        before = self._recall(settings)
        now = {topic: hashlib.sha256(payload).hexdigest()[:16] for topic, payload in wanted.configs.items()}
        qos = max(1, settings.qos)
        infos: list[Any] = []
        for topic, payload in wanted.configs.items():
            if session.fresh or before is None or before.get(topic) != now[topic]:
                infos.append(session.publish(topic, payload, qos, True))
        gone = set(before or {}) - set(now)
        if before is None:
            gone |= set(wanted.retired) - set(now)
        for topic in sorted(gone):
            infos.append(session.publish(topic, b"", qos, True))
        if infos:
            log.info("mqtt: %d Home Assistant discovery message(s), %d removal(s)", len(infos) - len(gone), len(gone))
        return infos, now
