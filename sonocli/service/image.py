"""Signed update images: the bundle format, building it, and verifying it before anything is installed.

An image (``*.sonoimg``) is an uncompressed POSIX tar holding exactly three regular files, in this order:

``manifest.json``
    ``{"format": "sonocli-update/1", "name": "sonocli", "version": ..., "wheel": <file name>,
    "sha256": <hex of the wheel>, "size": <bytes>, "created": <UTC ISO 8601>}``
``manifest.sig``
    the raw 64-byte Ed25519 signature over the exact bytes of ``manifest.json``
``<wheel>``
    the sonocli wheel itself

The signature covers the manifest and the manifest pins the wheel's SHA-256 and size, so one signature
check plus one hash check authenticates every byte that gets installed. Tar was chosen over a custom
container so that a maintainer can inspect an image with ``tar tvf``; members are read in memory and never
extracted by name, so path tricks inside the archive cannot write anywhere.

cryptography is imported inside the functions: importing this module stays cheap for the CLI.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zipfile
from datetime import UTC, datetime
from email.parser import HeaderParser
from pathlib import Path

from sonocli.errors import EXIT_USAGE, UpdateError, UsageError
from sonocli.model.valueclass import valueclass

FORMAT = "sonocli-update/1"
IMAGE_SUFFIX = ".sonoimg"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBKEY_NAME = "update-pubkey.pem"
MAX_MANIFEST = 64 * 1024
MAX_WHEEL = 256 * 1024 * 1024

_VERSION_RE = re.compile(
    r"^(?P<release>\d+(?:\.\d+)*)(?:(?P<pre>a|b|rc)(?P<pren>\d+))?(?:\.post(?P<post>\d+))?(?:\.dev(?P<dev>\d+))?$"
)
_WHEEL_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


class BadImageError(UpdateError):
    """The image itself is unusable (missing, several, truncated, tampered, wrongly signed): bad input, exit 2."""

    exit_code = EXIT_USAGE


@valueclass(frozen=True)
class Manifest:
    name: str
    version: str
    wheel: str
    sha256: str
    size: int
    created: str

    def to_bytes(self) -> bytes:
        data = {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "wheel": self.wheel,
            "sha256": self.sha256,
            "size": self.size,
            "created": self.created,
        }
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


@valueclass(frozen=True)
class VerifiedImage:
    """An image whose signature, hash, size and wheel metadata were all checked; ``wheel_bytes`` is trusted."""

    path: Path
    manifest: Manifest
    wheel_bytes: bytes
    key_fingerprint: str


def version_key(version: str) -> tuple[tuple[int, ...], int, int, int, int]:
    """Order PEP 440 versions of the forms sonocli releases use (N.N[.N][aN|bN|rcN][.postN][.devN]).

    A small subset on purpose: an image whose version this cannot order is refused rather than guessed at.
    """
    match = _VERSION_RE.match(version)
    if match is None:
        raise BadImageError(
            f"version {version!r} is not a release version sonocli can order (allowed: N.N[.N][aN|bN|rcN][.postN])"
        )
    release = tuple(int(part) for part in match["release"].split("."))
    release = release + (0,) * (6 - len(release))
    pre_rank = {"a": 0, "b": 1, "rc": 2}
    if match["pre"]:
        pre = pre_rank[match["pre"]] * 100000 + int(match["pren"])
    elif match["dev"] is not None and match["post"] is None:
        pre = -1  # 1.0.dev1 sorts before 1.0a1
    else:
        pre = 10**9
    post = int(match["post"]) if match["post"] is not None else -1
    dev = int(match["dev"]) if match["dev"] is not None else 10**9
    return release, pre, post, dev, 0


def _wheel_metadata(wheel: bytes, wheel_name: str) -> tuple[str, str, list[str]]:
    """Name, Version and Requires-Dist from the wheel's METADATA (and a sanity check that it is a zip)."""
    try:
        with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
            meta_names = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
            if len(meta_names) != 1:
                raise BadImageError(f"{wheel_name}: not a wheel (expected one *.dist-info/METADATA)")
            text = archive.read(meta_names[0]).decode("utf-8")
    except zipfile.BadZipFile as exc:
        raise BadImageError(f"{wheel_name}: not a wheel ({exc})") from exc
    headers = HeaderParser().parsestr(text)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise BadImageError(f"{wheel_name}: METADATA lacks Name or Version")
    return str(name), str(version), [str(r) for r in headers.get_all("Requires-Dist") or []]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def required_distributions(wheel: bytes) -> list[str]:
    """Distribution names the wheel needs unconditionally (Requires-Dist without an environment marker)."""
    _, _, requires = _wheel_metadata(wheel, "wheel")
    names = []
    for requirement in requires:
        if ";" in requirement:
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if match:
            names.append(match.group(1))
    return names


# --- keys --------------------------------------------------------------------------------------------------


def generate_signing_key(private_path: Path, public_path: Path) -> str:
    """Create an Ed25519 key pair for maintainers; the private key is written 0600 and never overwritten."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sonocli.fsutil import atomic_write_bytes

    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} already exists; refusing to overwrite a key (move it away first)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write_bytes(private_path, private_pem, mode=0o600)
    atomic_write_bytes(public_path, public_pem, mode=0o644)
    return key_fingerprint(public_pem)


def key_fingerprint(public_pem: bytes) -> str:
    """SHA-256 of the raw 32-byte public key (hex): what a maintainer compares when installing the key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(public_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise UpdateError("the update public key is not an Ed25519 key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _load_private_key(path: Path) -> object:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise BadImageError(f"signing key {path} does not exist") from exc
    except (ValueError, TypeError) as exc:
        raise BadImageError(f"signing key {path} is not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BadImageError(f"signing key {path} is not an Ed25519 key (generate one with make-image --generate-key)")
    return key


# --- building ----------------------------------------------------------------------------------------------


def make_image(wheel_path: Path, key_path: Path, out_path: Path) -> Manifest:
    """Sign ``wheel_path`` into an image at ``out_path`` (written atomically). Returns the manifest."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sonocli.fsutil import atomic_write_bytes

    try:
        wheel = wheel_path.read_bytes()
    except FileNotFoundError as exc:
        raise BadImageError(f"wheel {wheel_path} does not exist") from exc
    match = _WHEEL_RE.match(wheel_path.name)
    if match is None:
        raise BadImageError(f"{wheel_path.name}: not a wheel file name (name-version-py-abi-platform.whl)")
    name, version, _ = _wheel_metadata(wheel, wheel_path.name)
    if _canonical(name) != "sonocli":
        raise BadImageError(f"{wheel_path.name}: the wheel is {name!r}, an update image must carry 'sonocli'")
    version_key(version)
    key = _load_private_key(key_path)
    assert isinstance(key, Ed25519PrivateKey)
    manifest = Manifest(
        name="sonocli",
        version=version,
        wheel=wheel_path.name,
        sha256=hashlib.sha256(wheel).hexdigest(),
        size=len(wheel),
        created=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    )
    manifest_bytes = manifest.to_bytes()
    signature = key.sign(manifest_bytes)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member_name, data in ((MANIFEST, manifest_bytes), (SIGNATURE, signature), (wheel_path.name, wheel)):
            info = tarfile.TarInfo(member_name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    atomic_write_bytes(out_path, buffer.getvalue(), mode=0o644)
    return manifest


# --- verifying ---------------------------------------------------------------------------------------------


def _read_members(path: Path) -> dict[str, bytes]:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise BadImageError(f"update image {path} does not exist") from exc
    if size > MAX_WHEEL + 2 * MAX_MANIFEST:
        raise BadImageError(f"{path.name}: {size} bytes is larger than any sonocli image ({MAX_WHEEL} bytes max)")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if not info.isreg() or "/" in info.name or info.name in ("", ".", ".."):
                    raise BadImageError(f"{path.name}: unexpected archive member {info.name!r}")
                if info.name in members:
                    raise BadImageError(f"{path.name}: archive member {info.name!r} appears twice")
                if len(members) >= 3:
                    raise BadImageError(f"{path.name}: more than three members; not a sonocli image")
                handle = tar.extractfile(info)
                assert handle is not None
                data = handle.read()
                if len(data) != info.size:
                    raise BadImageError(f"{path.name}: truncated (member {info.name!r} is cut short)")
                members[info.name] = data
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, BadImageError):
            raise
        raise BadImageError(f"{path.name}: not a readable sonocli image, truncated or damaged ({exc})") from exc
    return members


def load_public_key(pubkey_path: Path) -> tuple[object, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from sonocli.errors import ConfigError

    try:
        pem = pubkey_path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no update public key at {pubkey_path}",
            hint=f"install the maintainers' Ed25519 public key as app/{PUBKEY_NAME}",
        ) from exc
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ConfigError(f"{pubkey_path}: not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{pubkey_path}: the update key must be Ed25519")
    return key, key_fingerprint(pem)


def verify_image(path: Path, pubkey_path: Path) -> VerifiedImage:
    """Check signature, then hash and size, then that the wheel is the sonocli version the manifest names."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key, fingerprint = load_public_key(pubkey_path)
    assert isinstance(key, Ed25519PublicKey)
    members = _read_members(path)
    for required in (MANIFEST, SIGNATURE):
        if required not in members:
            raise BadImageError(f"{path.name}: no {required} inside; truncated or not a sonocli image")
    manifest_bytes = members[MANIFEST]
    if len(manifest_bytes) > MAX_MANIFEST:
        raise BadImageError(f"{path.name}: manifest too large")
    try:
        key.verify(members[SIGNATURE], manifest_bytes)
    except InvalidSignature as exc:
        raise BadImageError(
            f"{path.name}: signature does not verify with {pubkey_path} (key {fingerprint[:16]}); "
            "the image was altered or signed with another key"
        ) from exc
    try:
        raw = json.loads(manifest_bytes)
        manifest = Manifest(
            name=str(raw["name"]),
            version=str(raw["version"]),
            wheel=str(raw["wheel"]),
            sha256=str(raw["sha256"]),
            size=int(raw["size"]),
            created=str(raw.get("created", "")),
        )
        image_format = raw["format"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadImageError(f"{path.name}: signed manifest is malformed ({exc})") from exc
    if image_format != FORMAT:
        raise BadImageError(
            f"{path.name}: image format {image_format!r} is not supported (this sonocli reads {FORMAT})"
        )
    wheel = members.get(manifest.wheel)
    if wheel is None or set(members) != {MANIFEST, SIGNATURE, manifest.wheel}:
        raise BadImageError(f"{path.name}: the wheel {manifest.wheel!r} named in the manifest is missing; truncated?")
    if len(wheel) != manifest.size or hashlib.sha256(wheel).hexdigest() != manifest.sha256:
        raise BadImageError(f"{path.name}: SHA-256 of {manifest.wheel} does not match the signed manifest (tampered)")
    name, version, _ = _wheel_metadata(wheel, manifest.wheel)
    if _canonical(name) != "sonocli" or version != manifest.version or _canonical(manifest.name) != "sonocli":
        raise BadImageError(
            f"{path.name}: wheel is {name} {version}, the manifest says {manifest.name} {manifest.version}"
        )
    version_key(manifest.version)
    return VerifiedImage(path=path, manifest=manifest, wheel_bytes=wheel, key_fingerprint=fingerprint)


def find_image(upd_dir: Path) -> Path:
    """The one image in ext/Upd/ (guide 7.1.1: exactly one image may reside there)."""
    if not upd_dir.is_dir():
        raise BadImageError(f"no update directory {upd_dir}", hint="upload the image to ext/Upd/ or name it")
    candidates = sorted(p for p in upd_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not candidates:
        raise BadImageError(f"no update image in {upd_dir}", hint="upload one image to ext/Upd/ (guide 7.1.1)")
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise BadImageError(
            f"{len(candidates)} files in {upd_dir} ({names}); exactly one update image is allowed",
            hint="delete the older images first (guide 7.1.1)",
        )
    return candidates[0]
