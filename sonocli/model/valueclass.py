"""`valueclass`: value classes with the semantics of ``dataclasses.dataclass`` at a fraction of its cost to define.

Why not dataclasses: on Python 3.11 a frozen dataclass compiles six functions when its module is imported
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``) and walks the class
at length: about 0.37 ms per class on a laptop, and `sonocli listen` defines 45 before its first telegram
(16 ms, where a Python that imports only click is up in 29 ms); on a Cortex-A7 concentrator, a few hundred ms
per cron run. `valueclass` compiles one function, ``__init__`` (the one method whose speed matters per
instance and whose signature tools read), and gives the others as shared functions over the field names
(C-level ``operator.attrgetter``): about 0.11 ms per class, instances built as fast as a dataclass's.

What stays the same, so a class can move between the two unchanged:

* the decorator's arguments (``frozen``, ``slots``, ``eq``), and :func:`field` here with the options of
  ``dataclasses.field`` sonocli uses (``default``, ``default_factory``, ``compare``, ``repr``, ``hash``);
* ``__init__`` with the fields in order, defaults and factories, ``__post_init__`` called at its end;
* ``__repr__`` ``Name(a=1, b='x')``, ``__eq__`` between instances of the same class only, ``__hash__`` over
  the compared fields for frozen classes and ``None`` (unhashable) for mutable ones, ``__match_args__``;
* frozen instances refuse assignment with ``dataclasses.FrozenInstanceError``; frozen slotted instances
  still copy and pickle;
* ``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass`` work: the fields are registered as
  dataclasses registers them, on first access (so a run that never asks never imports dataclasses, nor
  ``copy``: `decode` does not), and mypy sees a dataclass (``typing.dataclass_transform``).

What a value class refuses, loudly at import rather than subtly at run time: ``ClassVar`` and ``InitVar``
annotations, ``dataclasses.field`` in the class body (use this module's), mutable defaults, and inheriting
fields from a base class — none is used in sonocli; use ``dataclasses.dataclass`` where one is needed.
Registering the fields uses two names dataclasses does not document (``_FIELD``, ``Field._field_type``,
unchanged from 3.7 to 3.14): tests/unit/test_valueclass.py checks ``fields``/``replace``/``asdict``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")


class _Missing:
    """No default (dataclasses.MISSING's counterpart: dataclasses itself is imported only on demand)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class _Factory:
    """The default of a parameter whose field has a default factory (dataclasses' _HAS_DEFAULT_FACTORY)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


class Field:
    """What :func:`field` returns and a value class keeps per field (dataclasses.Field's subset)."""

    __slots__ = ("compare", "default", "default_factory", "hash", "name", "repr", "type")

    def __init__(self, default: Any, default_factory: Any, compare: bool, repr: bool, hash: bool | None) -> None:
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr
        self.hash = hash
        self.name = ""
        self.type: Any = None


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    compare: bool = True,
    repr: bool = True,
    hash: bool | None = None,
) -> Any:
    """Per-field options, as ``dataclasses.field`` (init=False and kw_only are not offered)."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare, repr, hash)


@overload
def valueclass(cls: type[T], /) -> type[T]: ...


@overload
def valueclass(
    *, frozen: bool = False, slots: bool = False, eq: bool = True
) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(field_specifiers=(field,))
def valueclass(
    cls: type[T] | None = None, /, *, frozen: bool = False, slots: bool = False, eq: bool = True
) -> type[T] | Callable[[type[T]], type[T]]:
    """Make ``cls`` a value class: as ``@dataclass`` / ``@dataclass(frozen=..., slots=..., eq=...)``."""

    def wrap(klass: type[T]) -> type[T]:
        return _build(klass, frozen=frozen, slots=slots, eq=eq)

    return wrap if cls is None else wrap(cls)


class _Registration:
    """``__dataclass_fields__`` / ``__dataclass_params__`` of a value class, made on first access.

    ``dataclasses.fields``/``replace``/``asdict``/``is_dataclass`` read these; building them needs the
    dataclasses module, which most runs never import (decode does not): so they are built, and cached on
    the class, when something first asks.
    """

    def __init__(self, key: str, fields: dict[str, Field], frozen: bool, eq: bool) -> None:
        self.key, self.fields, self.frozen, self.eq = key, fields, frozen, eq

    def __get__(self, obj: object, owner: type) -> Any:
        import dataclasses

        fields: dict[str, dataclasses.Field[Any]] = {}
        for name, spec in self.fields.items():
            made: dataclasses.Field[Any] = dataclasses.field(
                default=dataclasses.MISSING if spec.default is MISSING else spec.default,
                default_factory=dataclasses.MISSING if spec.default_factory is MISSING else spec.default_factory,
                compare=spec.compare,
                repr=spec.repr,
                hash=spec.hash,
            )
            made.name, made.type = name, spec.type
            made._field_type = dataclasses._FIELD  # type: ignore[attr-defined]  # checked by test_valueclass
            fields[name] = made
        made_now = {"__dataclass_fields__": fields,
                    "__dataclass_params__": _params(dataclasses, frozen=self.frozen, eq=self.eq)}
        for key, value in made_now.items():  # cached on the class: this descriptor is asked only once
            type.__setattr__(owner, key, value)
        return made_now[self.key]


def _build(cls: type[T], *, frozen: bool, slots: bool, eq: bool) -> type[T]:
    for base in cls.__mro__[1:]:
        if "__dataclass_fields__" in base.__dict__:
            raise TypeError(f"{cls.__qualname__}: a value class does not inherit fields ({base.__qualname__})")
    namespace = dict(cls.__dict__)
    annotations: dict[str, Any] = namespace.get("__annotations__", {})
    fields: dict[str, Field] = {}
    real_fields = getattr(sys.modules.get("dataclasses"), "Field", None)
    for name, annotation in annotations.items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if "ClassVar" in text or "InitVar" in text:
            raise TypeError(f"{cls.__qualname__}.{name}: ClassVar/InitVar are not supported by valueclass")
        given = namespace.get(name, MISSING)
        if real_fields is not None and isinstance(given, real_fields):
            raise TypeError(f"{cls.__qualname__}.{name}: use sonocli.model.valueclass.field, not dataclasses.field")
        spec = given if isinstance(given, Field) else Field(given, MISSING, True, True, None)
        if isinstance(spec.default, (list, dict, set)):
            raise ValueError(f"{cls.__qualname__}.{name}: mutable default; use default_factory")
        spec.name = name
        spec.type = annotation
        fields[name] = spec
    names = tuple(fields)
    _check_order(cls, fields)

    for name, spec in fields.items():  # defaults live in __init__, not as class attributes (a slot cannot)
        if spec.default is MISSING or slots:
            namespace.pop(name, None)
        else:
            namespace[name] = spec.default
    namespace["__dataclass_fields__"] = _Registration("__dataclass_fields__", fields, frozen, eq)
    namespace["__dataclass_params__"] = _Registration("__dataclass_params__", fields, frozen, eq)
    namespace["__match_args__"] = names
    namespace["__valueclass_specs__"] = fields  # what replace() and field_defaults() below read
    lazy_init = _LazyInit(cls, fields, frozen)
    namespace["__init__"] = lazy_init
    if "__repr__" not in cls.__dict__:
        namespace["__repr__"] = _make_repr(tuple(n for n, f in fields.items() if f.repr))
    compared = tuple(n for n, f in fields.items() if f.compare)
    if eq and "__eq__" not in cls.__dict__:
        namespace["__eq__"] = _make_eq(compared)
    if "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
        if eq and frozen:
            namespace["__hash__"] = _make_hash(tuple(n for n, f in fields.items() if _hashed(f)))
        elif eq:
            namespace["__hash__"] = None  # mutable and compared by value: unhashable, as a dataclass
    if frozen:
        namespace["__setattr__"] = _frozen_setattr
        namespace["__delattr__"] = _frozen_delattr
    if slots:
        if "__slots__" in cls.__dict__:
            raise TypeError(f"{cls.__qualname__} already specifies __slots__")
        namespace["__slots__"] = names
        namespace.pop("__dict__", None)
        namespace.pop("__weakref__", None)
        if frozen:  # copy.copy/pickle restore slots by setattr, which a frozen instance refuses
            namespace["__getstate__"] = _make_getstate(names)
            namespace["__setstate__"] = _make_setstate(names)
        new: type[T] = type(cls.__name__, cls.__bases__, namespace)
        new.__qualname__ = cls.__qualname__
        lazy_init.owner = new
        return new
    for key, value in namespace.items():
        if key not in ("__dict__", "__weakref__") and cls.__dict__.get(key, MISSING) is not value:
            setattr(cls, key, value)
    for name in fields:
        if name not in namespace and name in cls.__dict__:
            delattr(cls, name)
    return cls


def replace(obj: T, /, **changes: Any) -> T:
    """``dataclasses.replace`` for a value class without importing dataclasses (and copy, inspect's
    cost); anything else, a real dataclass, goes to ``dataclasses.replace``."""
    specs: dict[str, Field] | None = getattr(type(obj), "__valueclass_specs__", None)
    if specs is None:
        import dataclasses

        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    values = {name: getattr(obj, name) for name in specs}
    values.update(changes)  # an unknown name: __init__'s TypeError, as dataclasses.replace gives
    return type(obj)(**values)


def field_defaults(cls: type) -> dict[str, Any]:
    """Each field's default (``MISSING`` for none or a factory) of a value class, in order: what
    ``{f.name: f.default for f in dataclasses.fields(cls)}`` gives, without importing dataclasses."""
    specs: dict[str, Field] = cls.__dict__["__valueclass_specs__"]
    return {name: spec.default for name, spec in specs.items()}


class _LazyInit:
    """``__init__`` of a value class until it is first needed, then the compiled one, set on the class.

    Compiling ``__init__`` is most of what defining a value class costs (~70 µs, more for a wide class), and
    a command uses few of the classes its modules define (`decode` of a wired frame builds no Meter): so
    the class holds this descriptor, and the first ``Cls(...)`` (or ``inspect.signature(Cls)``, anything
    that looks ``__init__`` up) compiles the real one and replaces it. From then on, instances are built by
    a plain function in the class's dict, as before.
    """

    def __init__(self, cls: type, fields: dict[str, Field], frozen: bool) -> None:
        self.cls, self.fields, self.frozen = cls, fields, frozen
        self.owner: type = cls  # the class made (a new one for slots=True)

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        init: Any = self.owner.__dict__.get("__init__")
        if init is self:
            init = _make_init(self.cls, self.fields, frozen=self.frozen)
            type.__setattr__(self.owner, "__init__", init)
        return init if obj is None else init.__get__(obj, owner)


def _hashed(spec: Field) -> bool:
    return spec.compare if spec.hash is None else bool(spec.hash)


def _check_order(cls: type, fields: dict[str, Field]) -> None:
    seen_default = False
    for name, spec in fields.items():
        has_default = spec.default is not MISSING or spec.default_factory is not MISSING
        if seen_default and not has_default:
            raise TypeError(f"{cls.__qualname__}: non-default argument {name!r} follows default argument")
        seen_default = seen_default or has_default


def _params(dataclasses: Any, *, frozen: bool, eq: bool) -> Any:
    """``__dataclass_params__`` as dataclasses keeps it (read by some tools, never by sonocli)."""
    params = getattr(dataclasses, "_DataclassParams", None)
    if params is None:
        return None
    try:
        return params(True, True, eq, False, False, frozen)
    except TypeError:  # Python 3.12+: more arguments
        return None


def _make_init(cls: type, fields: dict[str, Field], *, frozen: bool) -> Callable[..., None]:
    """Compile ``__init__``: the one generated function, so instances cost what a dataclass's do."""
    env: dict[str, Any] = {"_FACTORY": _FACTORY, "_set": object.__setattr__}
    params: list[str] = []
    body: list[str] = []
    for name, spec in fields.items():
        if spec.default_factory is not MISSING:
            env[f"_factory_{name}"] = spec.default_factory
            params.append(f"{name}=_FACTORY")
            value = f"_factory_{name}() if {name} is _FACTORY else {name}"
        elif spec.default is not MISSING:
            env[f"_default_{name}"] = spec.default
            params.append(f"{name}=_default_{name}")
            value = name
        else:
            params.append(name)
            value = name
        body.append(f"    _set(self, {name!r}, {value})" if frozen else f"    self.{name} = {value}")
    if "__post_init__" in cls.__dict__:
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    if not params:
        source = "def __init__(self):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, env)
    init: Callable[..., None] = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {name: spec.type for name, spec in fields.items()} | {"return": None}
    return init


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The fields' values as a tuple, fast (attrgetter returns a bare value for one name, nothing for none)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)


def _make_repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({inner})"

    return __repr__


def _make_eq(names: tuple[str, ...]) -> Callable[[Any, object], bool]:
    values = _values(names)

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(values(self) == values(other))
        return NotImplemented

    return __eq__


def _make_hash(names: tuple[str, ...]) -> Callable[[Any], int]:
    values = _values(names)

    def __hash__(self: Any) -> int:
        return hash(values(self))

    return __hash__


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _make_getstate(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    values = _values(names)

    def __getstate__(self: Any) -> tuple[Any, ...]:
        return values(self)

    return __getstate__


def _make_setstate(names: tuple[str, ...]) -> Callable[[Any, Any], None]:
    def __setstate__(self: Any, state: Any) -> None:
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)

    return __setstate__
