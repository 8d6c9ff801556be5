"""The outbox and the Test button as the commands see them (``outbox list|retry|drop``, ``push``).

The outbox itself (sonocli.store.outbox) keeps the reports, their state and the delivery backoff; these are
the engine-level operations on it, so that ``sonocli outbox``, a web page and a script do the same thing.
``StepEvent`` (one step of a transmission: resolve, connect, login, upload, confirm) is re-exported for the
observer that ``push --test`` passes to :meth:`Engine.test_push`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sonocli.push.base import StepEvent, StepObserver
from sonocli.store.outbox import DONE, DROPPED, PENDING, OutboxItem

if TYPE_CHECKING:
    from sonocli.engine.core import Engine

__all__ = ["DONE", "DROPPED", "PENDING", "OutboxItem", "StepEvent", "StepObserver", "drop", "reports", "retry",
           "usage"]

ALL_STATES = (PENDING, DONE, DROPPED)


def reports(engine: Engine, *, all_states: bool = False) -> list[OutboxItem]:
    """The reports waiting for delivery, oldest first; with ``all_states`` the delivered and dropped too."""
    return engine.outbox.items(states=ALL_STATES if all_states else (PENDING,))


def usage(engine: Engine) -> dict[str, int]:
    """How full the outbox is against OUTBOX_MAXITEMS: items (by state) and their payload bytes, and the
    limit (``outbox list`` shows it; 'items' counts every state, as the limit does)."""
    use = engine.outbox.use().as_dict()
    return {"limit": int(engine.get("OUTBOX_MAXITEMS")), **use}


def retry(engine: Engine, ids: Sequence[int] | None) -> int:
    """Make reports due now (a dropped one becomes pending again); all pending ones when ``ids`` is None.

    An unknown id is NotFoundError and changes nothing. Returns how many reports changed.
    """
    return engine.outbox.retry(None if ids is None else list(ids))


def drop(engine: Engine, ids: Sequence[int] | None) -> int:
    """Give up on pending reports (kept as 'dropped', never sent); all pending ones when ``ids`` is None."""
    return engine.outbox.drop(None if ids is None else list(ids))
