"""`NamedTuple`: ``typing.NamedTuple``'s class syntax without its cost at import.

Why: with ``from __future__ import annotations`` (every sonocli module) each annotation of a
``typing.NamedTuple`` class is a string, and typing turns each into a ``ForwardRef``, which compiles it:
about 0.2 ms for a ten-field class when its module is imported. `decode` defines nine NamedTuples before its
first output and `listen` more; python itself imports click in ~28 ms, so this is a few per cent of the
whole run (on a Cortex-A7, tens of ms per cron run). Here the class body is handed to
``collections.namedtuple`` (what typing does too, after checking the annotations) and the annotations are
kept as written: ``typing.get_type_hints`` resolves them as it does for any class.

Use it as typing's, importing typing's for the type checker, which knows NamedTuple semantics::

    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from sonocli.model.namedtuple import NamedTuple

What is the same as ``typing.NamedTuple``: fields in order with defaults (no field without a default after
one with), methods, properties and class attributes without annotation, the docstring, ``_fields``,
``_field_defaults``, ``_replace``/``_asdict``/``_make``, ``__match_args__``, repr, equality, pickling.
What is refused, as typing refuses it: overriding ``__new__``/``__init__``/``__slots__``/``_fields`` and the
other namedtuple internals; and, which typing on 3.11 gets wrong silently, ``super()`` in a method. Generic
NamedTuples and subclassing a NamedTuple's fields are not offered (sonocli has none); tests in
tests/unit/test_namedtuple.py hold it to typing's behaviour.
"""

from __future__ import annotations

import collections
from typing import Any

# as typing's NamedTupleMeta: what a class body may not define, and what is not copied onto the class
_PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
                         "_make", "_replace", "_asdict", "_source"})
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__", "__classcell__"})


class _NamedTupleMeta(type):
    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        if not bases:  # the NamedTuple base below
            return super().__new__(mcls, name, bases, namespace)
        if bases != (NamedTuple,):
            raise TypeError(f"{name}: a NamedTuple has no other base classes")
        if "__classcell__" in namespace:
            raise TypeError(f"{name}: super() or __class__ in a NamedTuple method is not supported")
        annotations: dict[str, Any] = namespace.get("__annotations__", {})
        defaults: list[Any] = []
        for field in annotations:
            if field in namespace:
                defaults.append(namespace[field])
            elif defaults:
                raise TypeError(f"{name}: non-default namedtuple field {field} cannot follow default field(s)")
        make: Any = collections.namedtuple  # called with runtime names, which mypy's namedtuple plugin refuses
        made = make(name, list(annotations), defaults=defaults, module=namespace["__module__"])
        made.__annotations__ = dict(annotations)
        for key, value in namespace.items():
            if key in _PROHIBITED:
                raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
            if key in _SPECIAL or key in annotations:
                continue
            setattr(made, key, value)
            set_name = getattr(type(value), "__set_name__", None)
            if set_name is not None:
                set_name(value, made, key)
        return made


class NamedTuple(metaclass=_NamedTupleMeta):
    """Base of a named tuple class (``class Header(NamedTuple): ...``); the class made is a plain
    ``collections.namedtuple`` with the body's methods, as typing's is."""
