"""Loggers that cost nothing until something is logged; the CLI's log configuration, applied when it is.

Why: ``import logging`` brings ``traceback``, ``string``, ``weakref`` and some regular expressions, ~3 ms
here and tens of ms on a Cortex-A7, and a good `decode` or `listen` run logs nothing at all. So sonocli's
modules take their logger from :func:`logger`, which imports ``logging`` at the first record or level check
that needs it. The CLI calls :func:`configure` with ``-v``/``-q``; until ``logging`` is imported, level
checks are answered from that level (what the root logger will have), and when ``logging`` is imported —
by a sonocli logger, a library (paramiko), the daemon or a test — the configuration is applied at once, so
every module, lazy or not, logs the way `sonocli -v` says.

Only the logger methods sonocli uses are here (debug/info/warning/error/exception, isEnabledFor,
setLevel); anything else goes through :attr:`Logger.real`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import logging
    from importlib.abc import Loader as AbcLoader
    from importlib.machinery import ModuleSpec
    from types import ModuleType

NOTSET, DEBUG, INFO, WARNING, ERROR, CRITICAL = 0, 10, 20, 30, 40, 50
FORMAT = "sonocli: %(levelname)s: %(name)s: %(message)s"

_pending: int | None = None  # the root level configure() asked for, while logging is not imported yet


def configure(level: int) -> None:
    """Log records of ``level`` and above to stderr as ``sonocli: LEVEL: name: message`` (basicConfig)."""
    global _pending
    level = max(DEBUG, min(CRITICAL, level))
    if "logging" in sys.modules:
        _apply(sys.modules["logging"], level)
        return
    _pending = level
    if not any(isinstance(finder, _ConfigureOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ConfigureOnImport())


def _apply(module: Any, level: int) -> None:
    module.basicConfig(level=level, format=FORMAT, stream=sys.stderr)


def _apply_pending() -> None:
    global _pending
    if _pending is not None and "logging" in sys.modules:
        level, _pending = _pending, None
        _apply(sys.modules["logging"], level)


class _ConfigureOnImport:
    """A meta-path finder that only watches for ``logging``: when anyone imports it, the pending
    configuration is applied right after the module has run, before the importer sees it."""

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name != "logging":
            return None
        from importlib.machinery import PathFinder

        sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _ConfigureOnImport)]
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_configure(module: ModuleType) -> None:
            exec_module(module)  # the import machinery has put the module in sys.modules already
            _apply_pending()

        spec.loader = cast("AbcLoader", _Loader(loader, exec_then_configure))
        return spec


class _Loader:
    """The stdlib loader of ``logging`` with one step added after ``exec_module``."""

    def __init__(self, inner: Any, exec_module: Any) -> None:
        self._inner = inner
        self.exec_module = exec_module

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._inner.create_module(spec)
        return module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Logger:
    """A named logger that imports ``logging`` only when a record must be made or a level set."""

    __slots__ = ("_real", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: logging.Logger | None = None

    @property
    def real(self) -> logging.Logger:
        """The ``logging.Logger`` itself (imports logging)."""
        if self._real is None:
            import logging

            _apply_pending()
            self._real = logging.getLogger(self.name)
        return self._real

    def isEnabledFor(self, level: int) -> bool:
        """As logging's; before logging is imported: against the level configure() set (WARNING without)."""
        if self._real is None and "logging" not in sys.modules:
            return level >= (WARNING if _pending is None else _pending)
        return self.real.isEnabledFor(level)

    def setLevel(self, level: int) -> None:
        if level == NOTSET and self._real is None and "logging" not in sys.modules:
            return  # NOTSET on a logger nobody has touched: nothing to do, nothing to import
        self.real.setLevel(level)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(DEBUG):
            self.real.debug(msg, *args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(INFO):
            self.real.info(msg, *args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.real.warning(msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.real.error(msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.real.exception(msg, *args, **kwargs)


_loggers: dict[str, Logger] = {}


def logger(name: str) -> Logger:
    """The lazy logger called ``name`` (one per name, like ``logging.getLogger``)."""
    found = _loggers.get(name)
    if found is None:
        found = _loggers[name] = Logger(name)
    return found
