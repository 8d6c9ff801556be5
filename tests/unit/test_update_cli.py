"""update-system's command line: optional IMAGE next to the make-image subcommand."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sonocli.cli.root import cli


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_image_argument_and_subcommand_coexist(tmp_path: Path) -> None:
    root = tmp_path / "root"
    code, out = run("--root", str(root), "update-system", str(tmp_path / "nope.sonoimg"))
    assert code == 2 and "invalid value for '[IMAGE]'" in out and "does not exist" in out
    key = tmp_path / "sign.pem"
    code, out = run("update-system", "make-image", "--generate-key", "--key", str(key))
    assert code == 0, out
    assert key.exists() and (tmp_path / "sign.pub.pem").exists()
    before = key.read_bytes()
    code, out = run("update-system", "make-image", "--generate-key", "--key", str(key))
    assert code == 2 and "already exists; refusing to overwrite a key" in out and key.read_bytes() == before
    code, out = run("update-system", "--dry-run", str(key), "extra")
    assert code == 2 and "unexpected extra argument 'extra'" in out
    code, out = run("update-system", "--help")
    assert "[IMAGE] | COMMAND [ARGS]..." in out and "make-image" in out and "SONOCLI_PREFIX" in out


def test_option_values_are_not_taken_for_the_image(tmp_path: Path) -> None:
    """`--prefix make-image` is a prefix named make-image, not the subcommand."""
    root = tmp_path / "root"
    (root / "ext" / "Upd").mkdir(parents=True)
    code, out = run("--root", str(root), "update-system", "--prefix", "make-image", "--dry-run")
    assert code == 2 and "no update image in" in out


def test_make_image_needs_wheel_and_output(tmp_path: Path) -> None:
    code, out = run("update-system", "make-image", "--key", str(tmp_path / "k.pem"))
    assert code == 2 and "needs --wheel and -o/--output" in out
