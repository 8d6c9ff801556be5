"""Versioned installation with an atomic switch, a self-check and automatic rollback.

Layout below the installation prefix (``--prefix``, ``SONOCLI_PREFIX``, else the prefix the running
sonocli was installed into, else ``/opt/sonocli``)::

    <prefix>/versions/<version>/lib/      the sonocli wheel installed with ``pip install --target``
    <prefix>/versions/<version>/manifest.json   the signed manifest it came from
    <prefix>/current  -> versions/<version>     symlink; replaced with rename(2), so it is atomic
    <prefix>/previous -> versions/<old>         the version before, kept for a manual rollback
    <prefix>/bin/sonocli                        launcher: runs ``<python> -P -m sonocli`` with
                                                PYTHONPATH=<prefix>/current/lib

Only sonocli itself is in the image; its dependencies (click, cryptography, ...) come from the
interpreter that runs the update, which the launcher keeps using. The self-check fails (and the update
rolls back) if a dependency the new wheel requires is missing there.

Steps: install into a staging directory, self-check it, rename it into place, switch ``current``,
self-check through the launcher, prune versions other than current and previous. A failure before the
switch deletes the staging directory; a failure after it switches ``current`` back. ``app/`` (the
configuration) is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sonocli import __version__
from sonocli.errors import EXIT_USAGE, UpdateError
from sonocli.fsutil import atomic_write_text, fsync_directory
from sonocli.model.valueclass import valueclass
from sonocli.service.image import VerifiedImage, required_distributions, version_key

DEFAULT_PREFIX = Path("/opt/sonocli")
SELF_CHECK_TIMEOUT = 60.0
# pip compiles every module to byte code: on a slow ARM concentrator on flash that alone can take minutes
INSTALL_TIMEOUT = 600.0


class DowngradeError(UpdateError):
    """The image is not newer than the installed version and --allow-downgrade was not given (exit 2)."""

    exit_code = EXIT_USAGE


@valueclass(frozen=True)
class InstallResult:
    version: str
    previous: str | None
    directory: Path
    prefix: Path
    launcher: Path


def default_prefix() -> Path:
    """``SONOCLI_PREFIX``, else the prefix this sonocli runs from (``<prefix>/versions/<v>/lib``), else /opt."""
    env = os.environ.get("SONOCLI_PREFIX")
    if env:
        return Path(env)
    package_dir = Path(__file__).resolve().parents[1]  # .../lib/sonocli
    lib = package_dir.parent
    if lib.name == "lib" and lib.parent.parent.name == "versions":
        return lib.parent.parent.parent
    return DEFAULT_PREFIX


def installed_version(prefix: Path) -> str | None:
    """Version that ``<prefix>/current`` points at, from its manifest; None when nothing is installed."""
    manifest = prefix / "current" / "manifest.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (ValueError, KeyError) as exc:
        raise UpdateError(f"{manifest} is damaged ({exc}); reinstall with --allow-downgrade") from exc


def check_version(new: str, installed: str, *, allow_downgrade: bool) -> None:
    if allow_downgrade:
        return
    if version_key(new) < version_key(installed):
        raise DowngradeError(
            f"image version {new} is older than the installed {installed}; refused",
            hint="pass --allow-downgrade to install it anyway",
        )
    if version_key(new) == version_key(installed):
        raise DowngradeError(
            f"version {new} is already installed", hint="pass --allow-downgrade to reinstall the same version"
        )


@contextlib.contextmanager
def _lock(prefix: Path) -> Iterator[None]:
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".update.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UpdateError(f"another update is running on {prefix}") from exc
        yield


def _run(argv: list[str], env: dict[str, str], step: str, timeout: float = SELF_CHECK_TIMEOUT) -> str:
    try:
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateError(f"{step} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise UpdateError(f"{step} failed (exit {proc.returncode}): {tail[0]}")
    return proc.stdout


def _child_env(pythonpath: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(pythonpath)
    env["TMPDIR"] = str(tmp)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


_DEP_CHECK = (
    "import importlib.metadata as m, sys\n"
    "missing = []\n"
    "for name in sys.argv[1:]:\n"
    "    try: m.distribution(name)\n"
    "    except m.PackageNotFoundError: missing.append(name)\n"
    "print(' '.join(missing)); sys.exit(1 if missing else 0)\n"
)


def self_check(python: str, lib: Path, expected_version: str, requires: list[str], tmp: Path) -> None:
    """The new sonocli must start, print exactly the manifest's version, and find its dependencies."""
    env = _child_env(lib, tmp)
    out = _run([python, "-P", "-m", "sonocli", "--version"], env, "self-check (sonocli --version)")
    words = out.split()
    if not words or words[-1] != expected_version:
        raise UpdateError(f"self-check failed: new sonocli reports {out.strip()!r}, expected {expected_version}")
    if requires:
        _run([python, "-P", "-c", _DEP_CHECK, *requires], env, "self-check (dependencies)")


def _launcher_text(python: str, prefix: Path) -> str:
    lib = shlex.quote(str(prefix / "current" / "lib"))
    return (
        "#!/bin/sh\n"
        "# sonocli launcher, written by `sonocli update-system`; runs the version <prefix>/current points at.\n"
        f'PYTHONPATH={lib}"${{PYTHONPATH:+:$PYTHONPATH}}" exec {shlex.quote(python)} -P -m sonocli "$@"\n'
    )


def _switch_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` by renaming a fresh symlink over it: readers see old or new, never none."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_directory(link.parent)


def _read_link(link: Path) -> str | None:
    try:
        return os.readlink(link)
    except (FileNotFoundError, OSError):
        return None


def _free_dir_name(versions: Path, version: str) -> str:
    """``version``, or ``version-2``, ... when that directory exists (current or previous may point at it):
    an existing installation is never overwritten in place; _prune removes the unused ones afterwards."""
    name = version
    counter = 1
    while (versions / name).exists():
        counter += 1
        name = f"{version}-{counter}"
    return name


def install_image(
    image: VerifiedImage,
    prefix: Path,
    *,
    allow_downgrade: bool = False,
    python: str | None = None,
    log: object = None,
) -> InstallResult:
    """Install a verified image below ``prefix`` and switch to it; on any failure the old one stays current."""
    before = _read_link(prefix.absolute() / "current")
    kept = f"nothing changed: {before} is still current" if before else "nothing was installed"
    try:
        return _install(image, prefix, allow_downgrade=allow_downgrade, python=python, log=log)
    except UpdateError as exc:
        if exc.hint is None and not isinstance(exc, DowngradeError):
            exc.hint = kept
        raise
    except OSError as exc:
        raise UpdateError(f"install failed: {exc}", hint=kept) from exc


def _install(
    image: VerifiedImage,
    prefix: Path,
    *,
    allow_downgrade: bool = False,
    python: str | None = None,
    log: object = None,
) -> InstallResult:
    python = python or sys.executable
    say = log if callable(log) else (lambda _msg: None)
    prefix = prefix.absolute()
    manifest = image.manifest
    with _lock(prefix):
        old_version = installed_version(prefix)
        check_version(manifest.version, old_version or __version__, allow_downgrade=allow_downgrade)
        versions = prefix / "versions"
        versions.mkdir(exist_ok=True)
        _remove_leftovers(versions)
        old_target = _read_link(prefix / "current")
        tmp_root = Path(tempfile.mkdtemp(prefix=".tmp-", dir=versions))
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{manifest.version}-", dir=versions))
        # mkdtemp makes it 0700: installed by root, a daemon running as its own user could not import it
        os.chmod(staging, 0o755)
        final: Path | None = None
        try:
            wheel_path = tmp_root / manifest.wheel
            wheel_path.write_bytes(image.wheel_bytes)
            say(f"installing {manifest.wheel} into {staging}")
            env = _child_env(Path(), tmp_root)
            env.pop("PYTHONPATH")
            _run(
                [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--no-index",
                    "--no-cache-dir",
                    "--no-input",
                    "--target",
                    str(staging / "lib"),
                    str(wheel_path),
                ],
                env,
                "install (pip)",
                INSTALL_TIMEOUT,
            )
            atomic_write_text(staging / "manifest.json", manifest.to_bytes().decode("utf-8"))
            say("self-check of the new installation")
            requires = required_distributions(image.wheel_bytes)
            self_check(python, staging / "lib", manifest.version, requires, tmp_root)
            name = _free_dir_name(versions, manifest.version)
            final = versions / name
            os.rename(staging, final)
            fsync_directory(versions)
            launcher = prefix / "bin" / "sonocli"
            launcher_text = _launcher_text(python, prefix)
            try:
                old_launcher: str | None = launcher.read_text(encoding="utf-8")
            except FileNotFoundError:
                old_launcher = None
            try:
                if old_launcher != launcher_text:
                    atomic_write_text(launcher, launcher_text, mode=0o755)
                say(f"switching {prefix / 'current'} to versions/{name}")
                _switch_symlink(prefix / "current", f"versions/{name}")
                out = _run(
                    [str(launcher), "--version"],
                    _child_env(Path(), tmp_root) | {"PYTHONPATH": ""},
                    "self-check after switch",
                )
                if not out.split() or out.split()[-1] != manifest.version:
                    raise UpdateError(f"self-check after switch: launcher reports {out.strip()!r}")
            except BaseException:
                _rollback(prefix, old_target, launcher, old_launcher, launcher_text)
                raise
            if old_target is not None and Path(old_target).name != name:
                _switch_symlink(prefix / "previous", old_target)
            _prune(prefix, keep={name, Path(old_target).name if old_target else ""})
            return InstallResult(manifest.version, old_version, final, prefix, launcher)
        except BaseException:
            if final is not None and _read_link(prefix / "current") != f"versions/{final.name}":
                shutil.rmtree(final, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(tmp_root, ignore_errors=True)


def _rollback(
    prefix: Path, old_target: str | None, launcher: Path, old_launcher: str | None, new_launcher: str
) -> None:
    """Put back ``current`` and the launcher as they were (the launcher differs when the interpreter did)."""
    if old_launcher != new_launcher:
        if old_launcher is None:
            with contextlib.suppress(FileNotFoundError):
                launcher.unlink()
        else:
            atomic_write_text(launcher, old_launcher, mode=0o755)
    current = prefix / "current"
    if old_target is None:
        with contextlib.suppress(FileNotFoundError):
            current.unlink()
        fsync_directory(prefix)
    else:
        _switch_symlink(current, old_target)


def _remove_leftovers(versions: Path) -> None:
    """Staging and temp directories of an update that was killed (kill -9, power loss); we hold the lock."""
    for entry in versions.iterdir():
        if entry.name.startswith((".staging-", ".tmp-")):
            shutil.rmtree(entry, ignore_errors=True)


def _prune(prefix: Path, keep: set[str]) -> None:
    """Keep the current and previous versions; older ones only cost flash space."""
    for entry in (prefix / "versions").iterdir():
        if entry.name in keep or entry.name.startswith("."):
            continue
        shutil.rmtree(entry, ignore_errors=True)
