"""sonocli.logs: nothing imported until something is logged, and then logged the way -v/-q said.

Each case runs in a fresh interpreter: whether ``logging`` is imported is the point.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          check=True, timeout=60)


def test_level_checks_answer_without_importing_logging_and_records_are_formatted() -> None:
    done = _run(
        """
        import sys
        from sonocli import logs
        log = logs.logger("sonocli.x")
        assert not log.isEnabledFor(logs.INFO)  # logging's default: WARNING
        logs.configure(logs.INFO)
        assert log.isEnabledFor(logs.INFO) and not log.isEnabledFor(logs.DEBUG)
        log.debug("not shown %s", 1)
        log.setLevel(logs.NOTSET)
        print("logging" in sys.modules)
        log.info("shown %s", 2)
        print("logging" in sys.modules)
        """
    )
    assert done.stdout.split() == ["False", "True"]
    assert done.stderr == "sonocli: INFO: sonocli.x: shown 2\n"


def test_a_later_direct_import_of_logging_gets_the_configuration() -> None:
    # the daemon, the web interface and libraries (paramiko) use logging itself
    done = _run(
        """
        from sonocli import logs
        logs.configure(logs.DEBUG)
        import logging
        logging.getLogger("paramiko.transport").debug("kex %s", "ok")
        logs.logger("sonocli.y").debug("lazy %s", "too")
        assert logging.getLogger().level == logging.DEBUG
        """
    )
    assert done.stderr == "sonocli: DEBUG: paramiko.transport: kex ok\nsonocli: DEBUG: sonocli.y: lazy too\n"


def test_configuring_after_logging_is_imported_applies_at_once() -> None:
    done = _run(
        """
        import logging
        from sonocli import logs
        logs.configure(logs.ERROR)
        logs.logger("sonocli.z").warning("hidden")
        logs.logger("sonocli.z").error("seen")
        try:
            raise ValueError("boom")
        except ValueError:
            logs.logger("sonocli.z").exception("failed")
        """
    )
    lines = done.stderr.splitlines()
    assert lines[0] == "sonocli: ERROR: sonocli.z: seen"
    assert lines[1] == "sonocli: ERROR: sonocli.z: failed" and "ValueError: boom" in done.stderr


def test_one_logger_per_name() -> None:
    from sonocli import logs

    assert logs.logger("sonocli.same") is logs.logger("sonocli.same")
