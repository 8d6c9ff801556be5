"""Users and rights (guide 4.6, Tables 13/14): sonocli.engine.users and `sonocli users`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from sonocli.cli.root import cli
from sonocli.engine import users
from sonocli.engine.core import Engine
from sonocli.errors import NotFoundError, UsageError


def _run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), "users", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_new_root_has_the_guides_users_with_their_default_passwords(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    assert [u.name for u in users.list_users(engine)] == ["admin", "web", "ftp"]
    assert users.default_password_users(engine) == ["admin", "web", "ftp"]
    assert users.authenticate(engine, "web", "web") is not None
    assert users.authenticate(engine, "ftp", "ftp").ftp  # type: ignore[union-attr]
    assert users.authenticate(engine, "web", "admin") is None
    assert users.authenticate(engine, "nobody", "x") is None
    web = users.get_user(engine, "web")
    assert web.can("meter", True) and not web.ftp
    ftp = users.get_user(engine, "ftp")
    assert not ftp.can("meter") and not ftp.can("general")


def test_passwords_are_salted_scrypt_hashes_in_a_private_file(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    users.add_user(engine, "bob", "s3cret-pw")
    users.add_user(engine, "eve", "s3cret-pw")
    path = tmp_path / "app" / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "s3cret-pw" not in text
    records = {r["name"]: r for r in json.loads(text)["users"]}
    assert records["bob"]["hash"].startswith("scrypt$") and records["bob"]["hash"] != records["eve"]["hash"]
    assert all(r["hash"].startswith("scrypt$") for r in records.values())  # the defaults hashed when first saved
    assert users.authenticate(engine, "bob", "s3cret-pw") is not None
    assert users.authenticate(engine, "admin", "admin") is not None  # default still works until changed
    assert not users.verify_password("x", "garbage")


def test_a_new_user_has_no_rights_until_granted_and_write_implies_read(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    bob = users.add_user(engine, "bob", "pw")
    assert not any(bob.can(tab) for tab in users.TABS)
    bob = users.edit_user(engine, "bob", grant="meter:read,config:write")
    assert bob.can("meter") and not bob.can("meter", True)
    assert bob.can("config") and bob.can("config", True)
    bob = users.edit_user(engine, "bob", revoke="config:write")
    assert bob.can("config") and not bob.can("config", True)
    bob = users.edit_user(engine, "bob", revoke="meter,config")
    assert not bob.can("meter") and not bob.can("config")
    with pytest.raises(UsageError, match="unknown right"):
        users.edit_user(engine, "bob", grant="kitchen:read")
    with pytest.raises(UsageError, match="User tab has one right"):
        users.edit_user(engine, "bob", grant="user:read")


def test_admin_cannot_be_changed_or_deleted_and_only_admin_changes_its_password(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    with pytest.raises(UsageError, match="admin cannot be deleted"):
        users.delete_user(engine, "admin")
    with pytest.raises(UsageError, match="admin cannot be changed"):
        users.edit_user(engine, "admin", revoke="meter")
    with pytest.raises(users.PermissionDenied, match="only admin itself"):
        users.set_password(engine, "admin", "new", current="admin", by="web")
    with pytest.raises(users.PermissionDenied, match="current admin password is wrong"):
        users.set_password(engine, "admin", "new", current="wrong")
    users.set_password(engine, "admin", "new-admin-pw", current="admin", by="admin")
    assert users.authenticate(engine, "admin", "admin") is None
    assert users.authenticate(engine, "admin", "new-admin-pw") is not None
    assert users.default_password_users(engine) == ["web", "ftp"]


def test_at_most_two_ftp_users_and_the_right_only_at_creation(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    with pytest.raises(UsageError, match="at most 2 users"):
        users.add_user(engine, "logs", "pw", grants="ftp")
    users.delete_user(engine, "ftp")
    assert users.add_user(engine, "logs", "pw", grants="ftp").ftp
    users.add_user(engine, "other", "pw")
    with pytest.raises(UsageError, match="only be given when a user is created"):
        users.edit_user(engine, "other", grant="ftp")


def test_bad_names_passwords_and_sessions_change_nothing(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    for name, password, sessions in (("bad name", "pw", -1), ("bob", "", -1), ("bob", "a\nb", -1), ("bob", "pw", 0)):
        with pytest.raises(UsageError):
            users.add_user(engine, name, password, max_sessions=sessions)
    assert not (tmp_path / "app" / "users.json").exists()
    users.add_user(engine, "bob", "pw")
    with pytest.raises(UsageError, match="exists already"):
        users.add_user(engine, "bob", "pw2")
    with pytest.raises(NotFoundError):
        users.delete_user(engine, "nobody")


def test_the_cli_lists_adds_edits_deletes_and_never_prints_a_password(tmp_path: Path) -> None:
    code, out, err = _run(tmp_path, "list", "--json")
    assert code == 0 and [u["name"] for u in json.loads(out)] == ["admin", "web", "ftp"]
    assert "default password is still set for admin, web, ftp" in err
    code, out, _ = _run(tmp_path, "add", "bob", "--password", "hunter2-pw", "--json")
    assert code == 0 and json.loads(out)["rights"]["meter"] == "none" and "hunter2" not in out
    code, out, _ = _run(tmp_path, "edit", "bob", "--grant", "meter:read,config:write", "--json")
    rights = json.loads(out)["rights"]
    assert code == 0 and rights["meter"] == "read" and rights["config"] == "write" and rights["server"] == "none"
    code, out, _ = _run(tmp_path, "list")
    assert code == 0 and "hunter2" not in out and "scrypt" not in out
    assert "bob" in out
    assert _run(tmp_path, "delete", "admin")[0] == 2
    assert _run(tmp_path, "edit", "bob")[0] == 2  # nothing to change
    assert _run(tmp_path, "passwd", "admin", "--password", "x", "--current", "wrong")[0] == 1
    code, out, _ = _run(tmp_path, "passwd", "admin", "--password", "new-pw", "--current", "admin", "--json")
    assert code == 0 and json.loads(out) == {"changed": "admin"}
    code, out, _ = _run(tmp_path, "delete", "bob", "--json")
    assert code == 0 and json.loads(out) == {"deleted": "bob"}
    names = [u["name"] for u in json.loads(_run(tmp_path, "list", "--json")[1])]
    assert names == ["admin", "web", "ftp"]


def test_passwd_asks_for_the_password_hidden(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "users", "passwd", "web"], input="pw-1\npw-1\n")
    assert result.exit_code == 0, result.output
    assert "pw-1" not in result.stdout
    assert users.authenticate(Engine(tmp_path), "web", "pw-1") is not None
