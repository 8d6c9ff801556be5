"""Update image format: build, verify, and every way an image can be wrong."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from sonocli.service.image import (
    BadImageError,
    find_image,
    generate_signing_key,
    make_image,
    verify_image,
    version_key,
)


def tiny_wheel(directory: Path, name: str = "sonocli", version: str = "2.0.0") -> Path:
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", f'__version__ = "{version}"\n')
        archive.writestr(
            f"{name}-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
    return path


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    image = tmp_path / "i.sonoimg"
    make_image(tiny_wheel(tmp_path), tmp_path / "k.pem", image)
    return image, tmp_path / "k.pem", tmp_path / "k.pub.pem"


def test_round_trip_and_key_fingerprint(signed: tuple[Path, Path, Path]) -> None:
    image, _, pub = signed
    verified = verify_image(image, pub)
    assert verified.manifest.version == "2.0.0"
    assert zipfile.ZipFile(io.BytesIO(verified.wheel_bytes)).read("sonocli/__init__.py") == b'__version__ = "2.0.0"\n'
    assert len(verified.key_fingerprint) == 64


def test_every_byte_of_the_image_is_covered(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Flipping any single content byte of any member makes verification fail."""
    image, _, pub = signed
    with tarfile.open(image) as tar:
        spans = [(m.offset_data, m.size) for m in tar.getmembers()]
    original = image.read_bytes()
    for start, size in spans:
        for offset in range(start, start + size, max(1, size // 17)):
            damaged = bytearray(original)
            damaged[offset] ^= 0x40
            bad = tmp_path / "bad.sonoimg"
            bad.write_bytes(bytes(damaged))
            with pytest.raises(BadImageError):
                verify_image(bad, pub)


def test_refusals(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    image, key, pub = signed
    with pytest.raises(BadImageError, match=r"not a sonocli image|truncated"):
        (tmp_path / "trunc.sonoimg").write_bytes(image.read_bytes()[:700])
        verify_image(tmp_path / "trunc.sonoimg", pub)
    with pytest.raises(BadImageError, match="'other'"):
        make_image(tiny_wheel(tmp_path, name="other"), key, tmp_path / "o.sonoimg")
    with pytest.raises(BadImageError, match="does not exist"):
        verify_image(tmp_path / "missing.sonoimg", pub)
    generate_signing_key(tmp_path / "other.pem", tmp_path / "other.pub.pem")
    with pytest.raises(BadImageError, match="signature does not verify"):
        verify_image(image, tmp_path / "other.pub.pem")
    with pytest.raises(Exception, match="already exists"):
        generate_signing_key(key, tmp_path / "new.pub.pem")
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_find_image_wants_exactly_one(tmp_path: Path) -> None:
    upd = tmp_path / "Upd"
    upd.mkdir()
    with pytest.raises(BadImageError, match="no update image"):
        find_image(upd)
    (upd / "a.sonoimg").write_bytes(b"x")
    (upd / ".partial-upload").write_bytes(b"x")
    assert find_image(upd) == upd / "a.sonoimg"
    (upd / "b.sonoimg").write_bytes(b"x")
    with pytest.raises(BadImageError, match="exactly one"):
        find_image(upd)


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0", "1.0.1"),
        ("1.0.dev1", "1.0a1"),
        ("1.0a1", "1.0b2"),
        ("1.0rc1", "1.0"),
        ("1.0", "1.0.post1"),
        ("1.9.0", "1.10.0"),
        ("0.1.0", "1"),
    ],
)
def test_version_order(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


def test_version_equal_forms_and_garbage() -> None:
    assert version_key("1.0") == version_key("1.0.0")
    with pytest.raises(BadImageError):
        version_key("1.0-beta")
