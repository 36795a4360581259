"""Audited parameters: assigning one records a ``ParameterChangeEvent``; there is no quiet way round.

Declare a component's tunable state with :class:`AuditedParameter` on a subclass of
:class:`AuditedComponent`::

    class MetaController(AuditedComponent):
        risk_multiplier = AuditedParameter(event_type="param.risk_change", bounds=(0.25, 1.5))
        strategy_weights = AuditedParameter(event_type="param.weight_change")

        def __init__(self, audit):
            super().__init__(audit, source="meta_controller")
            self.risk_multiplier = 1.0                        # recorded: None -> 1.0, "initial value"

        def on_drawdown(self, drawdown):
            with reason(f"drawdown {drawdown:.1%} > 10%"):
                self.risk_multiplier = 0.5                    # recorded, with that reason

Every assignment that changes the value emits one event (old value, new value, source, reason,
and the owner when the source is someone else: ``set_parameter(..., source="ops_console")``)
before the new value is stored, so the trail never lags the component; an assignment that does
not change the value emits nothing. The reason comes from :func:`reason` or from
``set_parameter(..., reason=...)``; a change without one is still recorded, with
``trigger_reason`` null (marked missing), which the workbench's ``detect_unexplained_changes``
surfaces.

Containers cannot be changed behind the trail's back: a dict is stored as a read-only
:class:`FrozenMapping`, a list as a tuple, a set as a frozenset, a numpy array as a read-only copy.
Changing one means assigning a new value (``self.weights = {**self.weights, "a": 0.3}``), which is
recorded like any other.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import math
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from audit_core.errors import AuditConfigError
from audit_core.events import AuditEventType
from audit_core.hot.emitter import AuditEventEmitter

_REASON: contextvars.ContextVar[str | None] = contextvars.ContextVar("ledgerline_reason", default=None)
_UNSET = object()
INITIAL_REASON = "initial value"


@contextlib.contextmanager
def reason(text: str) -> Iterator[None]:
    """Every audited change made inside the block carries ``text`` as its trigger reason.

    Context-local (``contextvars``): threads and asyncio tasks each see their own reason.
    """
    token = _REASON.set(text)
    try:
        yield
    finally:
        _REASON.reset(token)


def current_reason() -> str | None:
    """The reason set by the innermost enclosing :func:`reason` block, if any."""
    return _REASON.get()


class FrozenMapping(Mapping[str, Any]):
    """A read-only mapping: an audited dict-like value, changed only by assigning a new one."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[Any, Any]) -> None:
        self._data = {key: freeze(value) for key, value in data.items()}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data.items(), key=repr)))

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError(
            f"audited mappings are read-only (setting {key!r}); assign a new mapping so the change is "
            "recorded: obj.param = {**obj.param, key: value}"
        )

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"audited mappings are read-only (deleting {key!r}); assign a new mapping without it")


def freeze(value: Any) -> Any:
    """An immutable copy of ``value`` (containers recursively), so no one can change it in place."""
    if isinstance(value, Mapping):
        return value if isinstance(value, FrozenMapping) else FrozenMapping(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(value)
    if hasattr(value, "__array__") and hasattr(value, "copy") and hasattr(value, "flags"):  # numpy, no import
        frozen = value.copy()
        frozen.flags.writeable = False
        return frozen
    return value


def to_json_value(value: Any) -> Any:
    """What an audited value looks like in the record: JSON types only, exact decimals as text."""
    if isinstance(value, enum.Enum):  # before str: a StrEnum is a str, but records its plain value
        return to_json_value(value.value) if isinstance(value.value, (str, int, float)) else value.name
    if value is _UNSET or value is None or isinstance(value, (bool, int, float, str)):
        return None if value is _UNSET else value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        # Keys are kept as they are: a non-string key (and so ``{1: ..., "1": ...}``, which would
        # collapse into one key) is refused by the event model with a ValidationError naming it.
        return {key: to_json_value(item) for key, item in value.items()}
    if isinstance(value, (frozenset, set)):
        return sorted((to_json_value(item) for item in value), key=repr)
    if isinstance(value, (tuple, list)):
        return [to_json_value(item) for item in value]
    if hasattr(value, "tolist"):
        return to_json_value(value.tolist())
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be recorded; use JSON types, enums, Decimal")


def _same(old: Any, new: Any) -> bool:
    if old is _UNSET or type(old) is not type(new):
        return False
    if hasattr(new, "__array__") and hasattr(new, "shape"):
        return bool(old.shape == new.shape and (old == new).all())
    if isinstance(new, float) and math.isnan(old) and math.isnan(new):
        return True
    return bool(old == new)


class AuditedParameter:
    """A class attribute whose every change is recorded through the owning component's emitter.

    Args:
        event_type: ``param.*`` type of the change events (``param.risk_change``, ...).
        bounds: The normal range of a numeric parameter, as documentation and for
            ``AuditedComponent.parameter_bounds()``; a value outside is recorded, not refused
            (an out-of-range change is exactly what an investigation needs to see).
    """

    def __init__(
        self, *, event_type: str = AuditEventType.PARAM_STATE_CHANGE.value, bounds: tuple[float, float] | None = None
    ) -> None:
        self.event_type = event_type
        self.bounds = bounds
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self._slot = f"_audited_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__[self._slot]
        except KeyError:
            raise AttributeError(f"{type(obj).__name__}.{self.name} has not been set yet") from None

    def __set__(self, obj: Any, value: Any) -> None:
        if not isinstance(obj, AuditedComponent) or "_audit" not in obj.__dict__:
            raise AuditConfigError(
                f"{type(obj).__name__}.{self.name} is audited, but the component has no audit emitter yet: "
                "call AuditedComponent.__init__(self, audit, source) before assigning it"
            )
        obj._change(self, value, None, None)


class AuditedComponent:
    """Base of components with audited parameters: holds the emitter and the source name.

    Args:
        audit: Where the changes go.
        source: The component's name in the trail (``meta_controller``).
    """

    def __init__(self, audit: AuditEventEmitter, source: str) -> None:
        self._audit = audit
        self.audit_source = source
        self.audited_changes = 0

    def set_parameter(self, name: str, value: Any, *, reason: str | None = None, source: str | None = None) -> None:
        """Assign an audited parameter with an explicit reason and, optionally, who made the change.

        ``source`` names an actor other than the component itself (an operator, a risk desk tool).
        The record then has ``source`` = that actor and ``owner`` = this component's
        ``audit_source``, so the change is read as one to this component's parameter (the value in
        force, ``workbench.state_at``), made by someone else.
        """
        descriptor = getattr(type(self), name, None)
        if not isinstance(descriptor, AuditedParameter):
            raise AuditConfigError(f"{type(self).__name__} has no audited parameter {name!r}")
        self._change(descriptor, value, reason, source)

    def audited_parameters(self) -> dict[str, Any]:
        """Name and current value of every audited parameter that has been set."""
        return {
            name: getattr(self, name)
            for name, attr in _descriptors(type(self)).items()
            if attr._slot in self.__dict__
        }

    @classmethod
    def parameter_bounds(cls) -> dict[str, tuple[float, float]]:
        """The declared normal range of each bounded parameter (for ``detect_unexplained_changes``)."""
        return {name: attr.bounds for name, attr in _descriptors(cls).items() if attr.bounds is not None}

    def _change(self, descriptor: AuditedParameter, value: Any, why: str | None, who: str | None) -> None:
        new = freeze(value)
        old = self.__dict__.get(descriptor._slot, _UNSET)
        if _same(old, new):
            return
        why = why if why is not None else current_reason()
        if old is _UNSET and why is None:
            why = INITIAL_REASON
        # Recorded before it takes effect: if the record cannot be made, the value does not change.
        # The component owns its parameters; ``owner`` is written only when someone else makes the
        # change, since a record without it means the source is the owner.
        source = who or self.audit_source
        self._audit.emit_param_change(
            source, descriptor.name, to_json_value(old), to_json_value(new), why,
            event_type=descriptor.event_type, owner=None if source == self.audit_source else self.audit_source,
        )
        self.__dict__[descriptor._slot] = new
        self.audited_changes += 1


def _descriptors(cls: type) -> dict[str, AuditedParameter]:
    found: dict[str, AuditedParameter] = {}
    for klass in reversed(cls.__mro__):
        found.update({name: attr for name, attr in vars(klass).items() if isinstance(attr, AuditedParameter)})
    return found
