"""`valueclass` behaves as `dataclasses.dataclass` for everything sonocli uses, and refuses what it does not do."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from sonocli.model.valueclass import MISSING, field, valueclass
from sonocli.model.values import Interface, Meter, ValueConfig


@valueclass(frozen=True, slots=True)
class Frozen:
    """A docstring kept."""

    a: int
    b: str = "x"
    c: tuple[int, ...] = field(default=(), compare=False, repr=False)

    @property
    def doubled(self) -> int:
        return self.a * 2


@valueclass
class Mutable:
    a: int
    items: list[int] = field(default_factory=list)
    seen: int = 0

    def __post_init__(self) -> None:
        self.seen += 1


@valueclass(frozen=True)
class Empty:
    pass


def test_init_repr_eq_hash_as_a_dataclass() -> None:
    x = Frozen(1, c=(9,))
    assert (x.a, x.b, x.c, x.doubled) == (1, "x", (9,), 2)
    assert repr(x) == "Frozen(a=1, b='x')"  # c has repr=False
    assert x == Frozen(1, "x", (8,))  # c has compare=False
    assert x != Frozen(2) and x != (1, "x") and hash(x) == hash(Frozen(1, "x", (7,)))
    assert {x: 1}[Frozen(1)] == 1
    assert Frozen.__doc__ == "A docstring kept." and Frozen.__match_args__ == ("a", "b", "c")
    assert not hasattr(x, "__dict__")  # slots
    with pytest.raises(TypeError):
        Frozen()  # type: ignore[call-arg]
    assert Empty() == Empty() and repr(Empty()) == "Empty()"


def test_frozen_refuses_assignment_and_deletion() -> None:
    x = Frozen(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        x.a = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del x.a  # type: ignore[misc]
    assert x.a == 1


def test_mutable_factories_and_post_init() -> None:
    m, n = Mutable(1), Mutable(1)
    m.items.append(5)
    assert n.items == [] and m.seen == 1 and n.seen == 1  # one list per instance; __post_init__ ran
    m.a = 3
    assert m == Mutable(3, [5], 0) and Mutable.__hash__ is None  # mutable and compared: unhashable


def test_dataclasses_functions_work() -> None:
    # the registration is made on first access, with two names dataclasses does not document: this test
    # is what notices a Python that changes them
    x = Frozen(1, c=(9,))
    assert dataclasses.is_dataclass(x)
    assert [f.name for f in dataclasses.fields(x)] == ["a", "b", "c"]
    assert dataclasses.replace(x, b="y") == Frozen(1, "y") and dataclasses.replace(x, b="y").c == (9,)
    assert dataclasses.asdict(Mutable(1, [2])) == {"a": 1, "items": [2], "seen": 1}
    meter = Meter(Interface.MBUS, "12345678", values=(ValueConfig(unit="Wh"),))
    assert dataclasses.replace(meter, serial="87654321").values == meter.values


def test_copy_and_pickle_frozen_slotted() -> None:
    x = Frozen(1, "z", (3,))
    for clone in (copy.copy(x), copy.deepcopy(x), pickle.loads(pickle.dumps(x))):
        assert clone == x and clone.c == (3,)


def test_refused_features_fail_at_definition() -> None:
    with pytest.raises(TypeError, match="non-default argument"):

        @valueclass
        class Order:
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(TypeError, match=r"not dataclasses\.field"):

        @valueclass
        class Foreign:
            a: int = dataclasses.field(default=0)

    with pytest.raises(TypeError, match="inherit"):

        @valueclass
        class Child(Mutable):
            b: int = 0

    with pytest.raises(ValueError, match="mutable default"):

        @valueclass
        class Shared:
            a: list[int] = []  # noqa: RUF012


def test_init_is_compiled_on_first_use_with_its_signature() -> None:
    import inspect
    import types

    @valueclass(frozen=True, slots=True)
    class Slotted:
        a: int
        b: str = "x"

    @valueclass
    class Plain:
        a: int
        items: list[int] = field(default_factory=list)

    for cls in (Slotted, Plain):
        assert not isinstance(vars(cls)["__init__"], types.FunctionType)  # nothing compiled at definition
    assert str(inspect.signature(Slotted)) == "(a: 'int', b: 'str' = 'x') -> None"
    assert isinstance(vars(Slotted)["__init__"], types.FunctionType)  # compiled when looked up, and kept
    first, second = Plain(1), Plain(2)
    assert isinstance(vars(Plain)["__init__"], types.FunctionType)
    assert (first.a, second.a, first.items is not second.items) == (1, 2, True)
    assert Slotted(1) == Slotted(1, "x") and Slotted(2, b="y").b == "y"
    with pytest.raises(TypeError):
        Slotted()  # type: ignore[call-arg]


def test_replace_without_dataclasses() -> None:
    from sonocli.model.valueclass import replace

    meter = Meter(Interface.WMBUS, serial="12345678")
    assert replace(meter, serial="87654321") == dataclasses.replace(meter, serial="87654321")
    assert replace(meter) == meter and replace(meter) is not meter
    with pytest.raises(TypeError):
        replace(meter, bogus=1)

    @dataclasses.dataclass(frozen=True)
    class Real:
        a: int

    assert replace(Real(1), a=2) == Real(2)  # a real dataclass: dataclasses.replace


def test_field_defaults_as_dataclasses_fields() -> None:
    from sonocli.model.valueclass import field_defaults

    for cls in (Meter, ValueConfig):
        expected = {f.name: f.default for f in dataclasses.fields(cls)}
        got = field_defaults(cls)
        assert list(got) == list(expected)
        for name, default in got.items():
            assert default == expected[name] or (default is MISSING and expected[name] is dataclasses.MISSING)
