"""The man page and shell completions are generated from the click tree and must be current and valid."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import need_exe

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "gen_docs.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sonocli_gen_docs", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tree() -> object:
    return _generator().build_tree()


def test_generated_files_are_up_to_date(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    stale = []
    for rel in _generator().OUTPUTS:
        committed = REPO / rel
        if not committed.exists() or committed.read_bytes() != (tmp_path / rel).read_bytes():
            stale.append(rel)
    assert stale == [], f"out of date: {stale}; run: python scripts/gen_docs.py"


def test_man_page_renders_without_warnings_and_lists_everything(tree: object) -> None:
    groff = need_exe("groff", "groff-base")
    man = REPO / "man" / "sonocli.1"
    for width in ([], ["-rLL=60n"]):  # the default 78 columns and a narrow terminal
        lint = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", *width, str(man)], capture_output=True, text=True)
        assert lint.returncode == 0 and lint.stderr == "", lint.stderr
    man_exe = need_exe("man", "man-db")
    env = dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="0", LANG="C.UTF-8")
    text = subprocess.run([man_exe, "-l", str(man)], capture_output=True, text=True, env=env, check=True).stdout
    text = re.sub(".\b", "", text)
    headings = {line.strip() for line in text.splitlines()}
    for node in tree.walk():  # type: ignore[attr-defined]
        if node.path != ("sonocli",):
            assert node.name in headings, f"{node.name} missing from the man page"
    for needed in (
        "SONOCLI_ROOT",
        "SONOCLI_PREFIX",
        "EXIT STATUS",
        "app/chip.ini",
        "ext/Upd/",
        "ext/sonocli-daemon.pid",
        "app/update-pubkey.pem",
        "app/device.key",
        "app/ftp-cacert.pem",
        "ext/log/wmbus_raw.log",
        "CHIP.INI PARAMETERS",
        "METER_TIME",
        "SHOW_KEYS",
    ):
        assert needed in text, needed
    # every option of every command is documented, with its long name where it has one
    for node in tree.walk():  # type: ignore[attr-defined]
        for opt in node.options:
            assert max(opt.names, key=len) in text, f"{node.name} {opt.names} missing from the man page"
    environment = text.split("\nENVIRONMENT\n", 1)[1].split("\nFILES\n", 1)[0]
    for var in ("SONOCLI_ROOT", "SONOCLI_PREFIX", "SHOW_KEYS", "CI", "XDG_DATA_HOME", "NO_COLOR"):
        assert re.search(rf"^\s+{var}\b", environment, re.MULTILINE), f"{var} missing from ENVIRONMENT"
    exit_status = text.split("\nEXIT STATUS\n", 1)[1].split("\nSEE ALSO\n", 1)[0]
    for code in ("0", "1", "2", "3", "70", "130"):
        assert re.search(rf"^\s+{code}\s", exit_status, re.MULTILINE), f"exit code {code} missing"
    # the guide's solcmd command reference (Table 24), each entry mapped or explained
    solcmd = text.split("\nSOLCMD COMMANDS\n", 1)[1].split("\nCHIP.INI PARAMETERS\n", 1)[0]
    table_24 = (
        "format-partition-app format-partition-ext config-partitions restart-eth0 restart-server "
        "regenerate-server-keys start-solapp stop-solapp update-rtc update-system reboot-system"
    ).split()
    for command in table_24:
        assert f"solcmd {command}" in solcmd, command
    for mapped in ("service format-log", "service regenerate-keys", "service stop-daemon", "serve-daemon"):
        assert f"sonocli {mapped}" in solcmd, mapped


def _bash_complete(*words: str) -> list[str]:
    script = (
        f"source {REPO / 'completions' / 'sonocli.bash'}\n"
        'COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _sonocli; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(
        ["bash", "-c", script, "bash", *words], capture_output=True, text=True, check=True, cwd=REPO / "completions"
    )
    return [line for line in out.stdout.splitlines() if line]


def test_bash_completion(tree: object) -> None:
    top = set(_bash_complete("sonocli", ""))
    assert top == set(tree.subs)  # type: ignore[attr-defined]
    assert _bash_complete("sonocli", "service", "re") == ["regenerate-keys", "restart-daemon"]
    assert _bash_complete("sonocli", "--root", "/tmp", "update-system", "make-image", "--w") == ["--wheel"]
    assert "make-image" in _bash_complete("sonocli", "update-system", "")
    # IMAGE is a file: offered next to the subcommand name
    assert "sonocli.bash" in _bash_complete("sonocli", "update-system", "sonocli.b")
    assert _bash_complete("sonocli", "service", "stop-daemon", "--") == ["--timeout", "--help"]
    # every command's subcommands and long options, as the click tree has them
    for node in tree.walk():  # type: ignore[attr-defined]
        words = list(node.path)
        if node.subs:
            assert set(_bash_complete(*words, "")) >= set(node.subs), node.name
        longs = {name for opt in node.options for name in opt.names if name.startswith("--")}
        assert set(_bash_complete(*words, "--")) == longs, node.name
    registered = subprocess.run(
        ["bash", "-c", f"source {REPO / 'completions' / 'sonocli.bash'} && complete -p sonocli"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "-F _sonocli sonocli" in registered


# Drives a real interactive zsh on a pty: TAB runs the completion system, and compadd is wrapped to print
# each candidate (the technique of zsh-capture-completion). The reads wait for markers, not for time.
ZSH_CAPTURE = r"""
# usage: zsh -f capture.zsh COMPLETION_FILE "command line to complete"
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT='%% '; RPROMPT=''; unsetopt zle_bracketed_paste 2>/dev/null"
zpty -w z "autoload -Uz compinit; compinit -u -d ${TMPDIR:-/tmp}/zcd.$$"
zpty -w z "source ${(q)1}"
zpty -w z "compdef _sonocli sonocli"
zpty -w z 'compadd () {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  typeset -a __hits
  builtin compadd -A __hits "$@"
  for i in {1..$#__hits}; do print -r -- "<<${__hits[$i]}>>"; done
}'
zpty -w z "bindkey '^I' complete-word; zstyle ':completion:*' list-grouped false"
zpty -w z "zstyle ':completion:*' insert-tab false"
zpty -w z "echo CAPTURE-START"
zpty -r z line '*CAPTURE-START*'
zpty -r z line '*CAPTURE-START*'
zpty -w -n z "$2"$'\t'
zpty -w z $'\C-U echo CAPTURE-END'
out=""
while zpty -r z line; do
  [[ $line == *CAPTURE-END* ]] && break
  out+=$line
done
for m in ${(f)"$(print -r -- $out | grep -o '<<[^>]*>>')"}; do print -r -- ${${m#<<}%>>}; done
zpty -d z
"""


def test_zsh_completion(tmp_path: Path) -> None:
    zsh = need_exe("zsh", "zsh")
    path = REPO / "completions" / "_sonocli"
    subprocess.run([zsh, "-n", str(path)], check=True)
    capture = tmp_path / "capture.zsh"
    capture.write_text(ZSH_CAPTURE)

    def complete(line: str) -> list[str]:
        env = dict(os.environ, HOME=str(tmp_path), TMPDIR=str(tmp_path))
        out = subprocess.run(
            [zsh, "-f", str(capture), str(path), line], capture_output=True, text=True, env=env, timeout=60, check=True
        )
        return sorted(word for word in out.stdout.splitlines() if word)

    assert complete("sonocli service re") == ["regenerate-keys", "restart-daemon"]
    assert complete("sonocli --root /tmp up") == ["update-system"]
    assert complete("sonocli update-system make-image --w") == ["--wheel"]
    assert complete("sonocli service stop-daemon --") == ["--help", "--timeout"]


def test_fish_completion(tree: object) -> None:
    fish = need_exe("fish", "fish")
    path = REPO / "completions" / "sonocli.fish"
    subprocess.run([fish, "-n", str(path)], check=True)
    out = subprocess.run(
        [
            fish,
            "--no-config",
            "-c",
            f"source {path}; complete -C 'sonocli update-system make-image --g'; "
            f"complete -C 'sonocli --root /tmp service st'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = [line.split("\t")[0] for line in out.splitlines()]
    assert names == ["--generate-key", "stop-daemon"]
    top = subprocess.run(
        [fish, "--no-config", "-c", f"source {path}; complete -C 'sonocli '"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert {line.split("\t")[0] for line in top.splitlines()} == set(tree.subs)  # type: ignore[attr-defined]
