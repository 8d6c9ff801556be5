"""update-system end to end: real signed images of this repo's sonocli installed with pip into a temp prefix.

Wheels are built from the repository's own ``sonocli/`` tree with a chosen version (a real wheel that pip
installs and that runs); one test also builds one with setuptools (``pip wheel``) to prove make-image takes
what maintainers really ship. Every refusal is checked to leave ``current`` and app/ byte-identical.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sonocli.service.image import generate_signing_key, make_image

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "sonocli"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(out_dir: Path, version: str, *, code_version: str | None = None) -> Path:
    """A real py3-none-any wheel of the repo's sonocli package, stamped with ``version``.

    ``code_version`` sets ``sonocli.__version__`` separately, to build a broken release whose self-check fails.
    """
    files: dict[str, bytes] = {}
    for path in sorted(PKG.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        rel = path.relative_to(REPO).as_posix()
        data = path.read_bytes()
        if rel == "sonocli/__init__.py":
            data = re.sub(rb'__version__ = "[^"]*"', f'__version__ = "{code_version or version}"'.encode(), data)
        files[rel] = data
    pyproject = (REPO / "pyproject.toml").read_text()
    deps_block = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    requires = re.findall(r'"([^"]+)"', deps_block)
    dist = f"sonocli-{version}.dist-info"
    files[f"{dist}/METADATA"] = (
        "Metadata-Version: 2.1\nName: sonocli\n"
        f"Version: {version}\nRequires-Python: >=3.11\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    ).encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: sonocli-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist}/entry_points.txt"] = b"[console_scripts]\nsonocli = sonocli.cli.root:main\n"
    files[f"{dist}/top_level.txt"] = b"sonocli\n"
    record = [_record_line(n, d) for n, d in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = out_dir / f"sonocli-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("keys")
    generate_signing_key(base / "good.pem", base / "good.pub.pem")
    generate_signing_key(base / "evil.pem", base / "evil.pub.pem")
    return {"good": base / "good.pem", "pub": base / "good.pub.pem", "evil": base / "evil.pem"}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("images")
    out: dict[str, Path] = {}
    for label, version, code_version in (("v1", "1.0.0", None), ("v2", "1.1.0", None), ("broken", "1.2.0", "9.9.9")):
        wheel_dir = base / label
        wheel_dir.mkdir()
        wheel = build_wheel(wheel_dir, version, code_version=code_version)
        out[label] = base / f"sonocli-{version}.sonoimg"
        make_image(wheel, keys["good"], out[label])
    out["evil"] = base / "evil-1.1.0.sonoimg"
    make_image(build_wheel(base / "v2", "1.1.0"), keys["evil"], out["evil"])
    return out


def sonocli(
    *args: str | Path, root: Path, prefix: Path | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SONOCLI_ROOT", "SONOCLI_PREFIX")}
    argv = [sys.executable, "-m", "sonocli", "--root", str(root), *map(str, args)]
    if prefix is not None:
        argv += ["--prefix", str(prefix)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=root, timeout=120, **kw)  # type: ignore[call-overload, no-any-return]


def make_root(tmp: Path, pubkey: Path) -> Path:
    root = tmp / "root"
    (root / "app").mkdir(parents=True)
    (root / "ext" / "Upd").mkdir(parents=True)
    (root / "app" / "chip.ini").write_text("[MUC]\nMUC_CONFIG_VER=5\n")
    shutil.copy(pubkey, root / "app" / "update-pubkey.pem")
    return root


def snapshot(*dirs: Path) -> dict[str, bytes | str]:
    state: dict[str, bytes | str] = {}
    for directory in dirs:
        if not directory.exists():
            continue
        for path in sorted(directory.rglob("*")):
            if path.is_symlink():
                state[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                state[str(path)] = path.read_bytes()
            else:
                state[str(path)] = "dir"
    return state


def run_installed(prefix: Path) -> str:
    out = subprocess.run(
        [str(prefix / "bin" / "sonocli"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=prefix,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    return out.stdout.split()[-1]


@pytest.fixture
def installed(tmp_path: Path, keys: dict[str, Path], images: dict[str, Path]) -> tuple[Path, Path]:
    """A root and a prefix where sonocli 1.0.0 is installed and running."""
    root = make_root(tmp_path, keys["pub"])
    prefix = tmp_path / "prefix"
    result = sonocli("update-system", images["v1"], root=root, prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert run_installed(prefix) == "1.0.0"
    return root, prefix


def test_good_image_from_upd_switches_over_and_keeps_config(
    installed: tuple[Path, Path], images: dict[str, Path]
) -> None:
    root, prefix = installed
    shutil.copy(images["v2"], root / "ext" / "Upd" / "update.sonoimg")
    app_before = snapshot(root / "app")
    result = sonocli("update-system", root=root, prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert "installed sonocli 1.1.0 (was 1.0.0)" in result.stdout
    assert run_installed(prefix) == "1.1.0"
    assert os.readlink(prefix / "current") == "versions/1.1.0"
    assert os.readlink(prefix / "previous") == "versions/1.0.0"
    assert snapshot(root / "app") == app_before
    assert not [p for p in (prefix / "versions").iterdir() if p.name.startswith(".")]
    # readable by a daemon that runs as another user than the one who installed it
    assert stat.S_IMODE((prefix / "versions" / "1.1.0").stat().st_mode) == 0o755


def test_leftovers_of_a_killed_update_are_cleared(installed: tuple[Path, Path], images: dict[str, Path]) -> None:
    root, prefix = installed
    for name in (".staging-9.9.9-abcd1234", ".tmp-abcd1234"):
        (prefix / "versions" / name / "lib").mkdir(parents=True)
        (prefix / "versions" / name / "lib" / "half.py").write_text("# cut short by kill -9\n")
    result = sonocli("update-system", images["v2"], root=root, prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (prefix / "versions").iterdir()) == ["1.0.0", "1.1.0"]


@pytest.mark.parametrize("damage", ["flip-wheel-byte", "flip-manifest-byte", "truncate", "wrong-key"])
def test_bad_images_leave_the_old_version(
    installed: tuple[Path, Path], images: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    root, prefix = installed
    bad = tmp_path / "bad.sonoimg"
    if damage == "wrong-key":
        shutil.copy(images["evil"], bad)
    else:
        data = bytearray(images["v2"].read_bytes())
        if damage == "truncate":
            data = data[: len(data) // 2]
        else:
            marker = b"sonocli/cli/root.py" if damage == "flip-wheel-byte" else b'"version": "1.1.0"'
            at = data.index(marker, 1536 if damage == "flip-wheel-byte" else 0) + len(marker) - 2
            data[at] ^= 0x01
        bad.write_bytes(bytes(data))
    before = snapshot(prefix, root / "app")
    result = sonocli("update-system", bad, root=root, prefix=prefix)
    assert result.returncode == 2, (result.stdout, result.stderr)
    expected = {
        "flip-wheel-byte": "SHA-256",
        "flip-manifest-byte": "signature does not verify",
        "truncate": "truncated",
        "wrong-key": "signature does not verify",
    }[damage]
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback
    assert snapshot(prefix, root / "app") == before
    assert run_installed(prefix) == "1.0.0"


def test_failing_self_check_rolls_back(installed: tuple[Path, Path], images: dict[str, Path]) -> None:
    root, prefix = installed
    before = snapshot(prefix)
    result = sonocli("update-system", images["broken"], root=root, prefix=prefix)
    assert result.returncode == 1
    assert "self-check" in result.stderr and "9.9.9" in result.stderr
    assert snapshot(prefix) == before
    assert run_installed(prefix) == "1.0.0"


def test_dry_run_and_downgrade(installed: tuple[Path, Path], images: dict[str, Path]) -> None:
    root, prefix = installed
    before = snapshot(prefix, root)
    result = sonocli("update-system", "--dry-run", images["v2"], "--json", root=root, prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert '"dry_run": true' in result.stdout and '"version": "1.1.0"' in result.stdout
    assert snapshot(prefix, root) == before
    # 1.1.0 installed, then 1.0.0 refused unless --allow-downgrade
    assert sonocli("update-system", images["v2"], root=root, prefix=prefix).returncode == 0
    refused = sonocli("update-system", images["v1"], root=root, prefix=prefix)
    assert refused.returncode == 2 and "older than the installed 1.1.0" in refused.stderr
    assert run_installed(prefix) == "1.1.0"
    again = sonocli("update-system", images["v2"], root=root, prefix=prefix)
    assert again.returncode == 2 and "already installed" in again.stderr
    forced = sonocli("update-system", "--allow-downgrade", images["v1"], root=root, prefix=prefix)
    assert forced.returncode == 0, forced.stderr
    assert run_installed(prefix) == "1.0.0"


def test_upd_directory_needs_exactly_one_image(tmp_path: Path, keys: dict[str, Path], images: dict[str, Path]) -> None:
    root = make_root(tmp_path, keys["pub"])
    prefix = tmp_path / "prefix"
    empty = sonocli("update-system", root=root, prefix=prefix)
    assert empty.returncode == 2 and "no update image in" in empty.stderr
    shutil.copy(images["v1"], root / "ext" / "Upd")
    shutil.copy(images["v2"], root / "ext" / "Upd")
    two = sonocli("update-system", root=root, prefix=prefix)
    assert two.returncode == 2 and "exactly one update image" in two.stderr
    (root / "app" / "update-pubkey.pem").unlink()
    (root / "ext" / "Upd" / images["v1"].name).unlink()
    nokey = sonocli("update-system", root=root, prefix=prefix)
    assert nokey.returncode == 2 and "no update public key" in nokey.stderr
    assert not prefix.exists()


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> object:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to simulate a full disk: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_during_install_leaves_old_version(
    tmp_path: Path, keys: dict[str, Path], images: dict[str, Path]
) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root")
    root = make_root(tmp_path, keys["pub"])
    with small_tmpfs(tmp_path / "disk", "6m") as disk:
        prefix = disk / "prefix"
        first = sonocli("update-system", images["v1"], root=root, prefix=prefix)
        assert first.returncode == 0, first.stderr
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(0, free - 200 * 1024))
        before = snapshot(prefix)
        result = sonocli("update-system", images["v2"], root=root, prefix=prefix)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "No space left on device" in result.stderr or "install (pip) failed" in result.stderr
        assert snapshot(prefix) == before
        assert run_installed(prefix) == "1.0.0"


def test_failure_after_the_switch_restores_current_and_launcher(
    tmp_path: Path, keys: dict[str, Path], images: dict[str, Path]
) -> None:
    """The prefix is remounted noexec: the new version passes its self-check (python reads files), the
    switch happens, then the launcher cannot be executed; current and the (older) launcher come back."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("remounting a tmpfs noexec needs root")
    root = make_root(tmp_path, keys["pub"])
    with small_tmpfs(tmp_path / "disk", "64m") as disk:
        prefix = disk / "prefix"
        first = sonocli("update-system", images["v1"], root=root, prefix=prefix)
        assert first.returncode == 0, first.stderr
        launcher = prefix / "bin" / "sonocli"
        launcher.write_text(launcher.read_text() + "# written by an older sonocli\n")
        subprocess.run(["mount", "-o", "remount,noexec", str(disk)], check=True)
        before = snapshot(prefix)
        result = sonocli("update-system", images["v2"], root=root, prefix=prefix)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "self-check after switch failed" in result.stderr, result.stderr
        assert snapshot(prefix) == before
        subprocess.run(["mount", "-o", "remount,exec", str(disk)], check=True)
        assert run_installed(prefix) == "1.0.0"


def test_make_image_from_a_setuptools_wheel(tmp_path: Path, keys: dict[str, Path]) -> None:
    """The maintainer path: pip wheel builds the repo's real wheel, make-image signs it, --dry-run accepts it."""
    src = tmp_path / "src"
    shutil.copytree(PKG, src / "sonocli", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("sonocli-*.whl")
    root = make_root(tmp_path, keys["pub"])
    out = tmp_path / "x.sonoimg"
    made = sonocli("update-system", "make-image", "--wheel", wheel, "--key", keys["good"], "-o", out, root=root)
    assert made.returncode == 0, made.stderr
    listing = subprocess.run(["tar", "tf", str(out)], capture_output=True, text=True, check=True).stdout.split()
    assert listing == ["manifest.json", "manifest.sig", wheel.name]
    from sonocli import __version__

    check = sonocli("update-system", "--dry-run", "--allow-downgrade", out, root=root, prefix=tmp_path / "p")
    assert check.returncode == 0, check.stderr
    assert f"sonocli {__version__}" in check.stdout


def test_installed_sonocli_updates_itself_into_its_own_prefix(
    installed: tuple[Path, Path], images: dict[str, Path]
) -> None:
    """Run through the launcher without --prefix: the prefix is found from where the running code lives."""
    root, prefix = installed
    env = {k: v for k, v in os.environ.items() if k not in ("SONOCLI_PREFIX", "PYTHONPATH")}
    launcher = str(prefix / "bin" / "sonocli")
    result = subprocess.run(
        [launcher, "--root", str(root), "update-system", str(images["v2"])],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert run_installed(prefix) == "1.1.0"
    info = subprocess.run(
        [launcher, "--root", str(root), "service", "info", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=True,
    )
    assert '"installed_version": "1.1.0"' in info.stdout and f'"install_prefix": "{prefix}"' in info.stdout


def _limit_file_size() -> None:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_write_failure_while_staging_leaves_old_version(installed: tuple[Path, Path], images: dict[str, Path]) -> None:
    """Without root (no tmpfs), RLIMIT_FSIZE makes the kernel refuse the large writes of the install step."""
    root, prefix = installed
    before = snapshot(prefix)
    result = sonocli("update-system", images["v2"], root=root, prefix=prefix, preexec_fn=_limit_file_size)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "File too large" in result.stderr and "versions/1.0.0 is still current" in result.stderr
    assert snapshot(prefix) == before
    assert run_installed(prefix) == "1.0.0"


def test_update_in_a_fresh_venv(tmp_path: Path, keys: dict[str, Path], images: dict[str, Path]) -> None:
    """A real installation in its own venv: the launcher runs that venv's interpreter, updates itself, and
    a release failing its self-check leaves it on the version before. The venv borrows the dependencies
    (click, cryptography, pip, ...) of the test venv through a .pth file, and sonocli only from the prefix."""
    import site
    import venv

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(purelib, "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("SONOCLI_ROOT", "SONOCLI_PREFIX", "PYTHONPATH")}
    alone = subprocess.run(
        [str(python), "-c", "import sonocli"], capture_output=True, text=True, env=clean, cwd=tmp_path
    )
    assert alone.returncode != 0, "the fresh venv must not see the repository's sonocli"
    root = make_root(tmp_path, keys["pub"])
    prefix = tmp_path / "prefix"
    # first installation: the repository's sonocli run by the venv's interpreter
    argv = [str(python), "-m", "sonocli", "--root", str(root), "update-system", str(images["v1"])]
    first = subprocess.run(
        [*argv, "--prefix", str(prefix)],
        capture_output=True, text=True, env=clean | {"PYTHONPATH": str(REPO)}, cwd=root, timeout=120,
    )
    assert first.returncode == 0, first.stderr
    launcher = prefix / "bin" / "sonocli"
    assert str(python) in launcher.read_text()
    assert run_installed(prefix) == "1.0.0"

    def through_launcher(image: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(launcher), "--root", str(root), "update-system", str(image)],
            capture_output=True, text=True, env=clean, cwd=root, timeout=120,
        )

    updated = through_launcher(images["v2"])
    assert updated.returncode == 0, updated.stderr
    assert run_installed(prefix) == "1.1.0"
    before = snapshot(prefix)
    broken = through_launcher(images["broken"])
    assert broken.returncode == 1 and "self-check" in broken.stderr
    assert snapshot(prefix) == before and run_installed(prefix) == "1.1.0"


def test_a_second_update_at_the_same_time_is_refused(installed: tuple[Path, Path], images: dict[str, Path]) -> None:
    import fcntl

    root, prefix = installed
    before = snapshot(prefix)
    with open(prefix / ".update.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running update holds it
        result = sonocli("update-system", images["v2"], root=root, prefix=prefix)
    assert result.returncode == 1 and "another update is running" in result.stderr, result.stderr
    assert snapshot(prefix) == before and run_installed(prefix) == "1.0.0"
