"""sonocli.model.namedtuple.NamedTuple behaves as typing.NamedTuple for what sonocli's classes use."""

from __future__ import annotations

import copy
import pickle
import typing
from datetime import datetime

import pytest

from sonocli.model.namedtuple import NamedTuple


class Fast(NamedTuple):
    """A record header."""

    ci: int
    when: datetime | None
    name: str = "x"
    extra: tuple[int, ...] = ()

    @property
    def shown(self) -> str:
        return f"{self.name}:{self.ci}"

    def doubled(self) -> int:
        return self.ci * 2

    LIMIT = 10


class Typed(typing.NamedTuple):
    """A record header."""

    ci: int
    when: datetime | None
    name: str = "x"
    extra: tuple[int, ...] = ()

    @property
    def shown(self) -> str:
        return f"{self.name}:{self.ci}"

    def doubled(self) -> int:
        return self.ci * 2

    LIMIT = 10


@pytest.mark.parametrize("cls", [Fast, Typed])
def test_the_same_as_typing(cls: type) -> None:
    item = cls(1, None)
    assert item == (1, None, "x", ())
    assert repr(item) == f"{cls.__name__}(ci=1, when=None, name='x', extra=())"
    assert item.shown == "x:1" and item.doubled() == 2 and cls.LIMIT == 10
    assert cls._fields == ("ci", "when", "name", "extra")
    assert cls._field_defaults == {"name": "x", "extra": ()}
    assert cls.__match_args__ == ("ci", "when", "name", "extra")
    assert item._replace(name="y").name == "y"
    assert item._asdict() == {"ci": 1, "when": None, "name": "x", "extra": ()}
    assert cls._make([2, None, "z", (1,)]).extra == (1,)
    assert cls.__doc__ == "A record header."
    assert cls.__qualname__ == cls.__name__ and cls.__module__ == __name__
    assert pickle.loads(pickle.dumps(item)) == item and copy.deepcopy(item) == item
    assert isinstance(item, tuple)
    match item:
        case cls(ci, when):
            assert (ci, when) == (1, None)
    with pytest.raises(TypeError):
        cls(1)
    with pytest.raises(AttributeError):
        item.ci = 3  # type: ignore[misc]


def test_type_hints_resolve_as_typing_s() -> None:
    assert typing.get_type_hints(Fast) == typing.get_type_hints(Typed)


def test_what_typing_refuses_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot follow default"):
        class _Order(NamedTuple):
            a: int = 0
            b: int  # type: ignore[misc]
    with pytest.raises(AttributeError, match="_replace"):
        class _Internal(NamedTuple):
            a: int

            def _replace(self) -> None:  # type: ignore[override]
                pass


def test_super_is_refused_rather_than_broken() -> None:
    with pytest.raises(TypeError, match="super"):
        class _Super(NamedTuple):
            a: int

            def __repr__(self) -> str:
                return "<" + super().__repr__() + ">"


def test_defining_one_compiles_no_annotation() -> None:
    # the point of the module: typing compiles every string annotation (ForwardRef), this does not
    import builtins

    compiled: list[str] = []
    real = builtins.compile

    def counting(source: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        compiled.append(str(source)[:40])
        return real(source, *args, **kwargs)

    builtins.compile = counting
    try:
        class _One(NamedTuple):
            a: int
            b: str | None
            c: tuple[int, ...] = ()
    finally:
        builtins.compile = real
    assert compiled == []
    assert _One(1, None).c == ()
