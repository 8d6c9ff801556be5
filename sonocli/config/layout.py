"""The root directory, laid out like the concentrator's file system.

On the device everything lives below ``/``: ``/app`` holds the configuration (chip.ini, device_handle.cfg,
certificates, keys) and ``/ext`` the data (log/, tmp/, Upd/). sonocli keeps the same shape below any
directory so that files copied from a device (FTP) drop in unchanged and the guide's paths keep meaning.
"""

from __future__ import annotations

import os
from pathlib import Path

from sonocli.model.valueclass import valueclass

CONCENTRATOR_MARKER = Path("/app/chip.ini")


@valueclass(frozen=True)
class RootLayout:
    """Paths below one root; computing them never touches the disk."""

    root: Path

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def ext(self) -> Path:
        return self.root / "ext"

    @property
    def log_dir(self) -> Path:
        return self.ext / "log"

    @property
    def tmp_dir(self) -> Path:
        return self.ext / "tmp"

    @property
    def upd_dir(self) -> Path:
        return self.ext / "Upd"

    @property
    def chip_ini(self) -> Path:
        return self.app / "chip.ini"

    @property
    def device_handle(self) -> Path:
        return self.app / "device_handle.cfg"

    @property
    def database(self) -> Path:
        return self.ext / "sonocli.db"

    @property
    def directories(self) -> tuple[Path, ...]:
        return (self.app, self.ext, self.log_dir, self.tmp_dir, self.upd_dir)


def default_root() -> Path:
    """``/`` on a concentrator (``/app/chip.ini`` exists), else ``$XDG_DATA_HOME/sonocli``.

    The fallback is ``~/.local/share/sonocli`` when XDG_DATA_HOME is unset, as the XDG spec says.
    """
    if CONCENTRATOR_MARKER.is_file():
        return Path("/")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sonocli"


def resolve_root(option: Path | None) -> Path:
    """``--root`` wins, then ``SONOCLI_ROOT``, then :func:`default_root`.

    click already folds SONOCLI_ROOT into the option; the variable is read here too so that library
    users (scripts, the daemon) get the same answer without click.
    """
    if option is not None:
        return Path(option)
    env = os.environ.get("SONOCLI_ROOT")
    if env:
        return Path(env)
    return default_root()


def init_root(root: Path) -> RootLayout:
    """Create the directories, a chip.ini listing every parameter with its default, and an empty meter list.

    Idempotent: existing files are never overwritten, so running it on a configured root is harmless.
    """
    from sonocli.config.chipini import default_text
    from sonocli.config.device_handle import MeterList, save_meter_list
    from sonocli.config.locking import locked
    from sonocli.errors import SonoError
    from sonocli.fsutil import atomic_write_text

    layout = RootLayout(Path(root))
    try:
        for directory in layout.directories:
            directory.mkdir(parents=True, exist_ok=True)
        # Created under the writers' lock: checked and written unlocked, a second process's first
        # `meters add` (or `config set`) landing between the check and the write was overwritten by the
        # empty default (two concurrent `meters add` on a fresh root lost a meter in 4 of 15 runs).
        with locked(layout.chip_ini):
            if not layout.chip_ini.exists():
                atomic_write_text(layout.chip_ini, default_text())
        with locked(layout.device_handle):
            if not layout.device_handle.exists():
                save_meter_list(layout.device_handle, MeterList())
    except OSError as exc:
        where = exc.filename or root
        raise SonoError(
            f"cannot set up the root {root}: {where}: {exc.strerror or exc}",
            hint="choose a writable directory with --root DIR or SONOCLI_ROOT",
        ) from None
    return layout
