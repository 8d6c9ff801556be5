"""The Service tab (guide 4.7, Table 15) for a software concentrator, and the MUC-ID.

Table 15 lists hardware, RTOS, software and website versions. sonocli maps them to: the machine and its
model (hardware), the operating system and kernel (RTOS), sonocli and Python (software); there is no
website. The configuration files' versions (chip.ini MUC_CONFIG_VER, device_handle.cfg <version>) are
added because a service engineer needs them to compare a box with the device.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import sys
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from sonocli import __version__
from sonocli.config.layout import RootLayout
from sonocli.errors import SonoError
from sonocli.model.valueclass import valueclass

MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
MUC_ID_PARAMETER = "MUC_ID"


@valueclass(frozen=True)
class ServiceInfo:
    software_version: str
    python: str
    os: str
    hardware: str
    muc_id: str
    muc_id_source: str
    chip_ini_version: str | None
    device_handle_version: str | None
    root: str
    install_prefix: str
    installed_version: str | None
    #: files that could not be read (their version is then null): the Service tab is where one looks when
    #: something is broken, so a damaged chip.ini is reported here instead of hiding every other field
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, str | list[str] | None]:
        data: dict[str, str | list[str] | None] = dict(asdict(self))
        data["problems"] = list(self.problems)
        return data


def muc_id(layout: RootLayout, machine_id_files: tuple[Path, ...] = MACHINE_ID_FILES) -> tuple[int, str]:
    """The concentrator's serial number (MUC-ID, used in XML MUC_ID and mail subjects) and where it came from.

    Table 25 has no serial-number parameter: on the device it is burnt in at the factory. sonocli reads a
    ``MUC_ID`` parameter from chip.ini if the schema defines one; otherwise it derives a stable 32-bit id
    from the machine: the first four bytes of SHA-256 over ``/etc/machine-id`` (systemd's per-install id),
    else ``/var/lib/dbus/machine-id``, else the MAC address (``uuid.getnode``). The hash keeps the raw
    machine id private while staying the same across reboots and sonocli updates.
    """
    from sonocli.config.chipini import ChipIni
    from sonocli.config.chipini_schema import by_name

    if MUC_ID_PARAMETER in by_name() and layout.chip_ini.is_file():
        with contextlib.suppress(SonoError, ValueError):  # a damaged chip.ini: fall back to the machine's id
            chip = ChipIni.load(layout.chip_ini)
            if chip.is_set(MUC_ID_PARAMETER):
                return int(str(chip.get(MUC_ID_PARAMETER)), 16), f"chip.ini {MUC_ID_PARAMETER}"
    for path in machine_id_files:
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return int.from_bytes(hashlib.sha256(b"sonocli-muc-id\0" + text.encode()).digest()[:4], "big"), str(path)
    node = uuid.getnode()
    return int.from_bytes(hashlib.sha256(b"sonocli-muc-id\0" + node.to_bytes(6, "big")).digest()[:4], "big"), "MAC"


def _hardware() -> str:
    model = ""
    for path in (Path("/proc/device-tree/model"), Path("/sys/class/dmi/id/product_name")):
        try:
            model = path.read_text(errors="replace").strip("\0\n ")
        except OSError:
            continue
        if model:
            break
    return f"{platform.machine()} {model}".strip()


def _os() -> str:
    try:
        pretty = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        pretty = ""
    return f"{pretty + ', ' if pretty else ''}{platform.system()} {platform.release()}"


def _chip_ini_version(layout: RootLayout) -> str | None:
    if not layout.chip_ini.is_file():
        return None
    from sonocli.config.chipini import ChipIni

    return str(ChipIni.load(layout.chip_ini).get("MUC_CONFIG_VER"))


def _device_handle_version(layout: RootLayout) -> str | None:
    if not layout.device_handle.is_file():
        return None
    from sonocli.config.device_handle import load_meter_list

    return load_meter_list(layout.device_handle).version


def collect(root: Path, prefix: Path | None = None) -> ServiceInfo:
    """Everything the Service tab shows; reads the config files but writes nothing."""
    from sonocli.service.installer import default_prefix, installed_version

    layout = RootLayout(root)
    prefix = prefix if prefix is not None else default_prefix()
    problems: list[str] = []

    def tolerant(read: Callable[[], str | None]) -> str | None:
        try:
            return read()
        except SonoError as exc:
            problems.append(f"{exc}{f' ({exc.hint})' if exc.hint else ''}")
            return None

    number, source = muc_id(layout)
    return ServiceInfo(
        software_version=__version__,
        python=f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        os=_os(),
        hardware=_hardware(),
        muc_id=f"{number:x}",
        muc_id_source=source,
        chip_ini_version=tolerant(lambda: _chip_ini_version(layout)),
        device_handle_version=tolerant(lambda: _device_handle_version(layout)),
        root=str(root),
        install_prefix=str(prefix),
        installed_version=tolerant(lambda: installed_version(prefix)),
        problems=tuple(problems),
    )
