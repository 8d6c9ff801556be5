"""An update image received over the network (the web interface's Service tab, ``POST /api/update``).

The guide (7.1) uploads the image into ``ext/Upd/`` and installs it from there; ``sonocli update-system``
does the installing. An upload takes the same path and adds only what a network upload needs: the bytes are
written to a hidden file in ``ext/Upd/`` and verified (Ed25519 signature with ``app/update-pubkey.pem``,
hash, version) *before* anything else changes, so a file that is not a signed image is refused and leaves
``ext/Upd/`` as it was. A verified image then replaces the image there (exactly one may reside there) and,
when asked, is installed by the same installer as ``update-system`` (self-checked, atomic switch, the old
version kept on any failure).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sonocli.config.layout import RootLayout
from sonocli.errors import UsageError

MAX_IMAGE_BYTES = 64 * 1024 * 1024  # a sonocli wheel is well under 2 MB; this bounds what a client can fill


def _safe_name(name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name or "update.sonoimg").name).lstrip(".") or "update.sonoimg"
    return base[:100]


def receive_update(
    layout: RootLayout,
    data: bytes,
    filename: str,
    *,
    install: bool = False,
    allow_downgrade: bool = False,
    prefix: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Verify ``data`` as an update image, keep it as the one image in ext/Upd/, install it if ``install``.

    Returns what ``update-system --json`` reports (image, version, sha256, key_fingerprint, and after an
    install installed_version/previous_version). A bad image raises the verifier's UpdateError; an empty or
    oversized upload is a UsageError. Nothing in ext/Upd/ changes unless the image verified.
    """
    from sonocli.service.image import PUBKEY_NAME, verify_image
    from sonocli.service.installer import check_version, default_prefix, install_image, installed_version

    if not data:
        raise UsageError("the upload is empty", hint="choose a signed sonocli update image (*.sonoimg)")
    if len(data) > MAX_IMAGE_BYTES:
        raise UsageError(f"the upload has {len(data)} bytes; an update image has at most {MAX_IMAGE_BYTES}")
    upd = layout.upd_dir
    upd.mkdir(parents=True, exist_ok=True)
    staging = upd / f".upload-{os.getpid()}-{_safe_name(filename)}"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        verified = verify_image(staging, layout.app / PUBKEY_NAME)
        prefix = prefix if prefix is not None else default_prefix()
        installed = installed_version(prefix)
        from sonocli import __version__

        check_version(verified.manifest.version, installed or __version__, allow_downgrade=allow_downgrade)
        final = upd / _safe_name(filename)
        for old in upd.iterdir():  # guide 7.1.1: exactly one image resides in ext/Upd/
            if old.is_file() and not old.name.startswith(".") and old != final:
                old.unlink()
        os.replace(staging, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    manifest = verified.manifest
    result: dict[str, Any] = {"image": str(final), "version": manifest.version, "sha256": manifest.sha256,
                              "key_fingerprint": verified.key_fingerprint, "prefix": str(prefix),
                              "installed_version": installed, "installed": False}
    if install:
        verified = verify_image(final, layout.app / PUBKEY_NAME)  # what is installed is what was checked
        outcome = install_image(verified, prefix, allow_downgrade=allow_downgrade, log=log)
        result.update(installed=True, installed_version=outcome.version, previous_version=outcome.previous,
                      launcher=str(outcome.launcher))
    return result
