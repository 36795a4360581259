"""Audit event models, their canonical serialization and their checksum.

A record is one JSON object on one line. Keys appear in the models' field order (common fields,
then the type's own fields), compact, UTF-8, with ``checksum`` always last, so that the same event
always yields the same bytes and a verifier can find the checksum without parsing JSON. Fields that
are None are written as ``null``, except ``ParameterChangeEvent.owner``, which is left out when None
(it was added later; see the class).
Money and quantities are decimal strings, never binary floats, so sums reconcile exactly.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import operator
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from audit_core.trust.record import RECORD_FORMAT, TS_RECORDED_SINCE, build_line, compute_checksum

__all__ = [
    "AuditEvent",
    "AuditEventType",
    "OrderSide",
    "ParameterChangeEvent",
    "SignalEvent",
    "SignalFilterReason",
    "SystemEvent",
    "TradeEvent",
    "event_class_for",
    "parse_record",
    "record_too_large_error",
]


class AuditEventType(enum.StrEnum):
    """Event types the library knows. Any other dotted lowercase name under a root is allowed too."""

    PARAM_STATE_CHANGE = "param.state_change"
    PARAM_WEIGHT_CHANGE = "param.weight_change"
    PARAM_K_CHANGE = "param.k_change"
    PARAM_RISK_CHANGE = "param.risk_change"

    TRADE_SIGNAL = "trade.signal"
    TRADE_ORDER = "trade.order"
    TRADE_FILL = "trade.fill"
    TRADE_REJECTED = "trade.rejected"
    TRADE_CANCELED = "trade.canceled"
    TRADE_POSITION_OPENED = "trade.position_opened"
    TRADE_POSITION_CHANGED = "trade.position_changed"
    TRADE_POSITION_CLOSED = "trade.position_closed"

    TRADE_ORDER_UPDATED = "trade.order.updated"
    TRADE_ORDER_TRIGGERED = "trade.order.triggered"
    TRADE_ORDER_PENDING_UPDATE = "trade.order.pending_update"
    TRADE_ORDER_PENDING_CANCEL = "trade.order.pending_cancel"

    SYS_REGIME_CHANGE = "sys.regime_change"
    SYS_RESAMPLING = "sys.resampling"
    SYS_EVOLUTION_TRIGGER = "sys.evolution_trigger"
    # Written by the core itself.
    SYS_RECOVERY = "sys.recovery"
    SYS_DEGRADED = "sys.degraded"
    SYS_RECOVERED = "sys.recovered"
    SYS_RETENTION = "sys.retention"
    # Written by the NautilusTrader observer around each run.
    SYS_SESSION_START = "sys.session_start"
    SYS_SESSION_END = "sys.session_end"


class OrderSide(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class SignalFilterReason(enum.StrEnum):
    """Common reasons a signal was not traded; any other snake_case reason is accepted too."""

    BELOW_THRESHOLD = "below_threshold"
    REGIME_FILTER = "regime_filter"
    RISK_LIMIT = "risk_limit"
    POSITION_LIMIT = "position_limit"
    COOLDOWN = "cooldown"
    LOW_CONFIDENCE = "low_confidence"


# --- field types -------------------------------------------------------------------------------


#: How deeply containers may nest in a JSON value (a parameter value, a payload): deeper is refused
#: at emit, so no reader (Python, DuckDB) ever meets a record it cannot parse.
MAX_NESTING_DEPTH = 64
#: The cold store's decimal columns are DECIMAL(38,18): at most this many digits before the point ...
COLD_DECIMAL_INTEGER_DIGITS = 20
#: ... and this many after it. A decimal that does not fit exactly is refused at emit.
COLD_DECIMAL_FRACTION_DIGITS = 18


def _check_text(text: str, what: str, path: str) -> None:
    """Refuse a string UTF-8 cannot encode (a lone surrogate): it would be rewritten or fail later.

    Callers skip it for ASCII text (``str.isascii`` is far cheaper than encoding)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {text!r}{_where(path)} contains a lone surrogate; UTF-8 cannot store it") from None


def _to_json_value(value: Any, _path: str = "", _depth: int = 0) -> Any:
    """Accept a value only if it has an exact JSON form; enums and Decimals are converted.

    Floats must be finite: JSON has no NaN, and a NaN parameter would silently become null.
    Strings and keys must be valid Unicode (no lone surrogates), keys must be strings (two keys that
    would become the same string are refused, never merged), and containers may nest at most
    ``MAX_NESTING_DEPTH`` deep.
    """
    kind = type(value)
    if kind is str:
        if not value.isascii():
            _check_text(value, "string", _path)
        return value
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"non-finite float {value!r}{_where(_path)} has no JSON form")
        return value
    if kind is dict or kind is list or kind is tuple:
        return _json_container(value, _path, _depth)
    if isinstance(value, enum.Enum):
        return _to_json_value(value.value, _path, _depth)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite decimal {value!r}{_where(_path)}")
        return str(value)
    # Subclasses of the JSON scalars (numpy.float64 is a float) become the plain type.
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return _to_json_value(plain(value), _path, _depth)
    if isinstance(value, (Mapping, list, tuple)):
        return _json_container(value, _path, _depth)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _to_json_value(item(), _path, _depth)
    raise ValueError(f"{kind.__name__} value {value!r}{_where(_path)} has no exact JSON form")


def _json_container(value: Mapping[Any, Any] | list[Any] | tuple[Any, ...], path: str, depth: int) -> Any:
    """A mapping (string keys, none twice) or a sequence, ``depth`` levels down: its JSON form."""
    if depth >= MAX_NESTING_DEPTH:
        raise ValueError(f"nested deeper than {MAX_NESTING_DEPTH} levels{_where(path)} (MAX_NESTING_DEPTH)")
    depth += 1
    # A plain dict is tested by its exact type first: isinstance against the Mapping ABC costs more
    # than the rest of a small payload's checks.
    if type(value) is not dict and not isinstance(value, Mapping):
        return [item if _plain_leaf(item) else _to_json_value(item, f"{path}[{i}]", depth)
                for i, item in enumerate(value)]
    out = {}
    # A dict's plain str keys are distinct: a key can occur twice only once a str subclass was turned
    # into its plain string, or in another kind of mapping.
    may_repeat = type(value) is not dict
    for key, item in value.items():
        if type(key) is not str:
            if not isinstance(key, str):
                raise ValueError(f"mapping key {key!r}{_where(path)} is not a string; keys must be strings")
            key = str(key)
            may_repeat = True
        if not key.isascii():
            _check_text(key, "mapping key", path)
        if may_repeat and key in out:
            raise ValueError(f"mapping key {key!r}{_where(path)} occurs twice")
        out[key] = item if _plain_leaf(item) else _to_json_value(item, f"{path}.{key}" if path else key, depth)
    return out


def _plain_leaf(value: Any) -> bool:
    """Whether ``_to_json_value`` would return ``value`` as it is, told without building its path
    (payloads are mostly such leaves; the path is only for error messages)."""
    kind = type(value)
    if kind is str:
        return value.isascii()  # type: ignore[no-any-return]
    if kind is int or kind is bool or value is None:
        return True
    return kind is float and math.isfinite(value)


def _to_json_object(value: Any) -> Any:
    """A JSON object (``SystemEvent.payload``): a mapping, checked like any JSON value."""
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ValueError(f"expected a JSON object (a dict), got {type(value).__name__}")
    return _json_container(value, "", 0)


def _where(path: str) -> str:
    return f" at {path}" if path else ""


_COLD_DECIMAL_LIMIT = (
    f"the cold store holds at most {COLD_DECIMAL_INTEGER_DIGITS} integer digits and "
    f"{COLD_DECIMAL_FRACTION_DIGITS} decimal places (DECIMAL(38,18))"
)


#: ``model_validate(..., context=READING)``: a record read back, not a new one. Limits that only say
#: what may be *written* (the cold decimal range, sizes > 0) do not reject what a trail already holds:
#: records written before a limit existed stay readable evidence.
READING = {"reading": True}


def _reading(info: ValidationInfo) -> bool:
    context = info.context
    return isinstance(context, dict) and bool(context.get("reading"))


def _exact_decimal(value: Any, parse: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Decimal:
    """Parse money and quantities in one pass: no floats (inexact), no NaN or infinity, and (for a new
    record, not one read back) nothing the cold store's DECIMAL(38,18) cannot hold exactly.

    Any other input (bytes, a dict) goes to ``parse``, pydantic's decimal validator, which takes it or
    refuses it with its own error; the usual inputs never reach it (one Python call per field).
    """
    # A plain str or Decimal, the usual inputs, are tested first by their exact type: this runs for
    # every money field.
    if type(value) is Decimal:
        number, short = value, False
    elif type(value) is str or (isinstance(value, (str, int)) and not isinstance(value, bool)):
        # A short plain string (at most 19 characters, no exponent) always fits: skip the digit walk.
        short = isinstance(value, str) and len(value) <= 19 and "e" not in value and "E" not in value
        try:
            number = Decimal(value)
        except ArithmeticError:
            raise ValueError(f"{value!r} is not a decimal number") from None
    elif isinstance(value, float):
        raise ValueError(f"float {value!r} is inexact for money or quantity; pass a str or Decimal")
    elif isinstance(value, Decimal):
        number, short = Decimal(value), False  # a subclass becomes a plain Decimal, as pydantic's would
    else:
        return parse(value)  # type: ignore[no-any-return]
    if not number.is_finite():
        raise ValueError(f"{number!r} is not a finite decimal")
    if short or _plainly_fits(number):
        return number
    return number if _reading(info) else _fits_cold(number)


def _plainly_fits(value: Decimal) -> bool:
    """Plain notation at most 19 characters long always fits DECIMAL(38,18) (no digit walk needed)."""
    text = str(value)
    return len(text) <= 19 and "E" not in text


def _fits_cold(value: Decimal) -> Decimal:
    """``value`` if DECIMAL(38,18) holds it exactly, else a ValueError saying the limit."""
    if _plainly_fits(value):
        return value
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if not any(digits):
        return value  # zero, whatever its exponent
    if len(digits) + exponent > COLD_DECIMAL_INTEGER_DIGITS:
        raise ValueError(f"{value} has more than {COLD_DECIMAL_INTEGER_DIGITS} integer digits; {_COLD_DECIMAL_LIMIT}")
    beyond = -COLD_DECIMAL_FRACTION_DIGITS - exponent  # digits past the 18th decimal place
    if beyond > 0 and any(digits[-beyond:]):
        raise ValueError(
            f"{value} has non-zero digits beyond {COLD_DECIMAL_FRACTION_DIGITS} decimal places; {_COLD_DECIMAL_LIMIT}"
        )
    return value


_MoneyRule = Callable[[Any, ValidatorFunctionWrapHandler, ValidationInfo], Decimal]


def _money_schema(validate: _MoneyRule) -> GetPydanticSchema:
    """A money field's schema: ``validate`` wrapped around pydantic's decimal validator, which runs only
    for inputs ``validate`` hands it (a before-validator would run both, two passes per field). Serialized
    as a Decimal is (its ``str`` in JSON, the Decimal itself in Python), by pydantic-core's to-string
    serializer, which skips the type check of the Decimal serializer (a fill writes up to six)."""
    return GetPydanticSchema(lambda source, handler: core_schema.with_info_wrap_validator_function(
        validate,
        core_schema.decimal_schema(allow_inf_nan=False),
        serialization=core_schema.to_string_ser_schema(when_used="json"),
    ))


JsonValue = Annotated[Any, BeforeValidator(_to_json_value)]
#: A JSON object: ``_to_json_object`` checks it and returns the plain dict the record keeps, so it is the
#: field's whole validator (as a before-validator, pydantic's ``dict[str, Any]`` would copy it again).
JsonObject = Annotated[dict[str, Any], GetPydanticSchema(lambda source, handler: (
    core_schema.no_info_plain_validator_function(_to_json_object, serialization=core_schema.simple_ser_schema("dict"))
))]
ExactDecimal = Annotated[Decimal, _money_schema(_exact_decimal)]
Text = Annotated[str, Field(min_length=1, max_length=256)]
Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

_DOTTED = r"[a-z0-9_]+(\.[a-z0-9_]+)*"


#: ``exclude_if`` of the fields left out when None: ``operator.is_(None, value)``. A partial of a C
#: function, so pydantic-core's serializer asks it without running a Python frame (it asks for
#: each such field of every record it writes).
_is_none: Callable[[Any], bool] = functools.partial(operator.is_, None)


def _event_type_field(root: str, default: str | None = None) -> Any:
    pattern = rf"^{root}\.{_DOTTED}$" if root else rf"^[a-z][a-z0-9_]*\.{_DOTTED}$"
    if default is None:
        return Field(pattern=pattern)
    return Field(default=default, pattern=pattern)


# --- models ------------------------------------------------------------------------------------

#: Dotted root -> model, filled by ``AuditEvent.__init_subclass__``; used to parse records back.
_EVENT_CLASSES: dict[str, type[AuditEvent]] = {}


class AuditEvent(BaseModel):
    """Fields every record carries. Subclass it (with ``event_type_root``) to add your own root.

    ``sequence``, ``prev_hash`` and ``trader_id`` are stamped by the emitter; an event built by
    hand leaves them unset. Events are frozen: what was written is what you hold.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_enum_values=True)

    #: Dotted root this class accepts (``"param"``); empty for "any root".
    event_type_root: ClassVar[str] = ""

    ts_event: int = Field(default_factory=time.time_ns, ge=0, lt=2**63)
    event_type: str = _event_type_field("")
    source: Text
    trader_id: str = Field(default="", max_length=64)
    sequence: int | None = Field(default=None, ge=0, lt=2**63)
    correlation_id: str | None = Field(default=None, min_length=1, max_length=256)
    prev_hash: Hash | None = None
    # Stamped by the emitter with the chain fields (``RECORD_FORMAT``). Left out of the record when
    # None, so a format-1 record (written before the field existed) parses and serializes back to
    # exactly its own bytes.
    format: int | None = Field(default=None, ge=1, le=RECORD_FORMAT, exclude_if=_is_none)
    #: When the emitter recorded the event (ns since the epoch, UTC): its clock (the engine clock
    #: in a backtest), clamped so that it never goes backwards within a stream. Stamped with the
    #: chain fields from format 3 on; left out when None, so older records keep their bytes.
    #: ``ts_event`` is the caller's time of the event and may go backwards (venues differ).
    ts_recorded: int | None = Field(default=None, ge=0, lt=2**63, exclude_if=_is_none)

    # A slot, not a field or private attribute: it is not serialized, costs nothing to build,
    # and is not carried over by model_copy (a copy is not the record that was written).
    __slots__ = ("_stamped_checksum",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.event_type_root:
            _EVENT_CLASSES[cls.event_type_root] = cls

    def canonical_bytes(self) -> bytes:
        """The record's bytes without ``checksum``: what the checksum covers."""
        return self.__pydantic_serializer__.to_json(self)

    def compute_checksum(self, hmac_key: bytes | None = None) -> str:
        """SHA-256 hex (HMAC-SHA256 with a key) over ``canonical_bytes()``."""
        return compute_checksum(self.canonical_bytes(), hmac_key)

    @property
    def checksum(self) -> str:
        """The checksum stamped when the event was written, else its plain SHA-256."""
        stamped: str | None = getattr(self, "_stamped_checksum", None)
        return stamped if stamped is not None else self.compute_checksum()

    def to_line(self) -> bytes:
        """The full record line, ``\\n``-terminated, as it is (or would be) written."""
        return build_line(self.canonical_bytes(), self.checksum)


class ParameterChangeEvent(AuditEvent):
    """A tunable parameter changed. Values keep their JSON type so numeric histories chart.

    ``source`` is who made the change; ``owner`` the component whose parameter it is, when that is
    someone else (an operator overriding a controller's parameter). A record without ``owner``
    means the source owns the parameter: that is how records written before the field existed read.
    """

    event_type_root: ClassVar[str] = "param"

    event_type: str = _event_type_field("param", AuditEventType.PARAM_STATE_CHANGE.value)
    param_name: Text
    old_value: JsonValue = None
    new_value: JsonValue
    trigger_reason: str | None = Field(default=None, max_length=1024)
    # Last, and left out of the record when None (the only field that is): a record without an
    # owner has exactly the bytes it had before the field existed, and parse_record(line).to_line()
    # gives those bytes back.
    owner: str | None = Field(default=None, min_length=1, max_length=256, exclude_if=_is_none)


class SignalEvent(AuditEvent):
    """A trading signal, and whether it was acted on or filtered (and why)."""

    event_type_root: ClassVar[str] = "trade.signal"

    event_type: str = Field(default=AuditEventType.TRADE_SIGNAL.value, pattern=rf"^trade\.signal(\.{_DOTTED})?$")
    strategy_source: Text
    signal_value: float
    confidence: float = Field(ge=0.0, le=1.0)
    regime: str | None = Field(default=None, max_length=256)
    instrument_id: str | None = Field(default=None, max_length=256)
    acted_on: bool = True
    filter_reason: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")

    @model_validator(mode="after")
    def _reason_matches_outcome(self) -> SignalEvent:
        if not self.acted_on and self.filter_reason is None:
            raise ValueError("filter_reason is required when acted_on is False (e.g. 'below_threshold')")
        if self.acted_on and self.filter_reason is not None:
            raise ValueError(f"filter_reason={self.filter_reason!r} given but acted_on is True")
        return self


_TRADE_REQUIRED: dict[str, tuple[str, ...]] = {
    AuditEventType.TRADE_ORDER.value: ("order_id", "side", "size"),
    AuditEventType.TRADE_FILL.value: ("order_id", "side", "size", "price"),
}


def _needs_positive_size(event_type: str) -> bool:
    """``trade.order``, ``trade.fill`` and their subtypes (``trade.order.accepted``)."""
    return event_type in ("trade.order", "trade.fill") or event_type.startswith(("trade.order.", "trade.fill."))


def _exact_size(value: Any, parse: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Decimal:
    """``_exact_decimal``, and positive on orders and fills (the side says which way): position records may
    carry 0 (closed), and prices may be negative (some instruments trade below zero)."""
    size = _exact_decimal(value, parse, info)
    if size > 0 or _reading(info):
        return size
    event_type = info.data.get("event_type", "")
    if _needs_positive_size(event_type):
        raise ValueError(f"size must be > 0 on {event_type}, got {size}")
    return size


#: ``TradeEvent.size``: checked in the same call that parses it.
OrderSize = Annotated[Decimal, _money_schema(_exact_size)]

#: ``TradeEvent.side``: the enum's own validator (its errors), then the member's value as the model
#: keeps it (``use_enum_values``), by a dict lookup in C rather than the enum's Python ``value``
#: property (one Python call per trade record).
_SIDE_VALUES: dict[OrderSide, str] = {side: side.value for side in OrderSide}
Side = Annotated[OrderSide, GetPydanticSchema(lambda source, handler: core_schema.no_info_after_validator_function(
    _SIDE_VALUES.__getitem__,
    core_schema.enum_schema(OrderSide, list(OrderSide), sub_type="str"),
    serialization=core_schema.str_schema(),
))]


class TradeEvent(AuditEvent):
    """An order, fill, rejection, cancel or position change. Money and sizes are exact decimals."""

    event_type_root: ClassVar[str] = "trade"

    event_type: str = _event_type_field("trade")
    instrument_id: Text
    order_id: str | None = Field(default=None, min_length=1, max_length=256)
    side: Side | None = None
    size: OrderSize | None = None
    price: ExactDecimal | None = None
    slippage_bps: ExactDecimal | None = None
    realized_pnl: ExactDecimal | None = None
    commission: ExactDecimal | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z0-9]{2,12}$")
    position_id: str | None = Field(default=None, max_length=256)
    strategy_source: str | None = Field(default=None, max_length=256)
    reason: str | None = Field(default=None, max_length=1024)
    # Execution details an auditor needs; all optional, recorded when the source knows them.
    order_type: str | None = Field(default=None, max_length=64)
    expected_price: ExactDecimal | None = None
    # A stop's trigger price (NautilusTrader observer). Left out when None, so records written
    # before the field existed keep their bytes.
    trigger_price: ExactDecimal | None = Field(default=None, exclude_if=_is_none)
    venue_order_id: str | None = Field(default=None, max_length=256)
    trade_id: str | None = Field(default=None, max_length=256)
    liquidity_side: str | None = Field(default=None, max_length=32)
    realized_return: ExactDecimal | None = None
    avg_px_open: ExactDecimal | None = None
    avg_px_close: ExactDecimal | None = None
    duration_ns: int | None = Field(default=None, ge=0, lt=2**63)
    ts_init: int | None = Field(default=None, ge=0, lt=2**63)

    @model_validator(mode="after")
    def _required_for_type(self) -> TradeEvent:
        required = _TRADE_REQUIRED.get(self.event_type)
        if required is not None:
            missing = [name for name in required if getattr(self, name) is None]
            if missing:
                raise ValueError(f"{self.event_type} needs {', '.join(missing)}")
        return self


class SystemEvent(AuditEvent):
    """Anything else the system does: regime changes, resampling, recovery, retention."""

    event_type_root: ClassVar[str] = "sys"

    event_type: str = _event_type_field("sys")
    payload: JsonObject = Field(default_factory=dict)


def event_class_for(event_type: str) -> type[AuditEvent]:
    """The model for an event type: longest registered dotted root wins, else ``AuditEvent``."""
    parts = event_type.split(".")
    for cut in range(len(parts), 0, -1):
        cls = _EVENT_CLASSES.get(".".join(parts[:cut]))
        if cls is not None:
            return cls
    return AuditEvent


def parse_record(line: bytes | str) -> AuditEvent:
    """Parse one record line back into its model, keeping its stored checksum.

    The checksum is not checked here; that is ``hot.verifier.verify``'s job. Limits on what may be
    written now (``READING``) do not reject a record written before they existed.

    Raises:
        pydantic.ValidationError: the line is not a valid record.
    """
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError(f"record is a JSON {type(data).__name__}, expected an object")
    stored = data.pop("checksum", None)
    cls = event_class_for(str(data.get("event_type", "")))
    event = cls.model_validate(data, context=READING)
    if (event.format or 1) >= TS_RECORDED_SINCE and event.ts_recorded is None:
        raise _format_error(cls, event.format, "needs ts_recorded (stamped by the emitter from format 3 on)")
    if (event.format or 1) < TS_RECORDED_SINCE and event.ts_recorded is not None:
        raise _format_error(cls, event.format, "has ts_recorded, which only format 3 and later records carry")
    if isinstance(stored, str):
        object.__setattr__(event, "_stamped_checksum", stored)
    return event


def _format_error(cls: type[AuditEvent], record_format: int | None, problem: str) -> ValidationError:
    detail: InitErrorDetails = {
        "type": PydanticCustomError("record_format", "a format {format} record {problem}",
                                    {"format": record_format or 1, "problem": problem}),
        "loc": ("ts_recorded",),
        "input": record_format,
    }
    return ValidationError.from_exception_data(cls.__name__, [detail])


def record_too_large_error(event: AuditEvent, size: int, limit: int) -> ValidationError:
    """A ValidationError naming the largest field of a record over the size limit."""
    fields = event.model_dump(mode="json")
    largest = max(fields, key=lambda name: len(json.dumps(fields[name])))
    detail: InitErrorDetails = {
        "type": PydanticCustomError(
            "record_too_large",
            "serialized record is {size} bytes, over the limit of {limit} (max_record_bytes); "
            "field {field!r} alone is {field_size} bytes",
            {"size": size, "limit": limit, "field": largest, "field_size": len(json.dumps(fields[largest]))},
        ),
        "loc": (largest,),
        "input": f"<{len(json.dumps(fields[largest]))} bytes>",
    }
    return ValidationError.from_exception_data(type(event).__name__, [detail])
