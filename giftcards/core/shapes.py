"""What every request and answer shape shares: constrained types, list answers, and how msgspec's refusal
of a request reads to a client.

A shape is a `msgspec.Struct` declared once, next to the domain that makes or takes it; the web layer
decodes requests into it, encodes answers from it and writes the OpenAPI components from it. A refusal
names its field as the API always has (`amount`, `items[0].code`, `body`) and never echoes the value.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct
from msgspec import inspect as mi

from giftcards.core.errors import ValidationError

S = TypeVar("S", bound=Struct)
T = TypeVar("T")


# A pattern's refusal says its "x-pattern-message" (also shown in the OpenAPI document).
Reference = Annotated[str, Meta(max_length=200, description="Your reference, e.g. the till receipt")]
DateTime = Annotated[datetime, Meta(tz=True)]  # ISO 8601 with an offset: a naive time is ambiguous
Timestamp = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]  # as answers write one


PAGE_LIMIT_DEFAULT = 20
Limit = Annotated[int, Meta(ge=1, le=100)]
Cursor = Annotated[str, Meta(max_length=64)]  # the id of the last item of the page before


class PageQuery(Struct, forbid_unknown_fields=True):
    limit: Limit = PAGE_LIMIT_DEFAULT
    starting_after: Cursor | None = None


class Page(Struct, Generic[T], kw_only=True):
    """A list answer, in the order the list is kept; `has_more` says whether a next page exists."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool = False


def page(items: list[T], limit: int) -> Page[T]:
    """A page of at most `limit` of `items`, fetched one more than that to know whether more follow."""
    return Page(data=items[:limit], has_more=len(items) > limit)


def given(shape: Struct) -> dict[str, Any]:
    """The fields of a decoded request that the client sent (an UNSET default marks one left out)."""
    return {
        name: value for name, value in msgspec.structs.asdict(shape).items() if value is not msgspec.UNSET
    }


def decode(document: dict[str, Any], shape: type[S]) -> S:
    """`document` (a JSON object) as `shape`, or the ValidationError that names each field it gets wrong."""
    missing = [{"field": name, "message": "is required"} for name in _required(shape) if name not in document]
    if missing:  # all of them at once, so a form can mark every empty field
        raise ValidationError(missing)
    try:
        decoded = msgspec.convert(document, shape)
    except msgspec.ValidationError as exc:
        raise ValidationError([refusal(shape, str(exc))]) from None
    for name, field in _datetime_fields(shape):
        value = getattr(decoded, name)
        if isinstance(value, datetime) and not _fits_utc(value):
            raise ValidationError([{"field": field, "message": _DATE_TIME}])
    return decoded


def _fits_utc(value: datetime) -> bool:
    """False for a time that is not one in UTC (0001-01-01T01:00+02:00 is before the year 1 there)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


def decode_query(params: dict[str, str], shape: type[S]) -> S:
    """Query values arrive as text: the integer and boolean ones are converted first, then decoded."""
    kinds = _field_kinds(shape)
    converted: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for name, raw in params.items():
        kind = kinds.get(name)
        if "\x00" in raw:  # PostgreSQL text cannot store it: refused here rather than failing there
            errors.append({"field": name, "message": "must not contain the NUL character"})
        elif isinstance(kind, mi.IntType):
            if not re.fullmatch(r"-?[0-9]{1,18}", raw):
                errors.append({"field": name, "message": "must be a whole number"})
            else:
                converted[name] = int(raw)
        elif isinstance(kind, mi.BoolType):
            if raw not in ("true", "false"):
                errors.append({"field": name, "message": "must be true or false"})
            else:
                converted[name] = raw == "true"
        else:
            converted[name] = raw
    if errors:
        raise ValidationError(errors)
    return decode(converted, shape)


_DATE_TIME = "must be an ISO 8601 date-time with a time zone"
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_TYPE_NAMES = {"int": "integer", "str": "string", "bool": "boolean", "float": "number"}


def refusal(shape: type, error: str) -> dict[str, str]:
    """One field error, as the API words it, from msgspec's message (which may quote the value)."""
    parsed = _AT.match(error)
    assert parsed is not None
    message, path = parsed["message"], parsed["path"] or ""
    field = path.lstrip(".") or "body"
    if named := re.fullmatch(r"Object missing required field `(.+)`", message):
        return {"field": _join(path, named[1]), "message": "is required"}
    if named := re.fullmatch(r"Object contains unknown field `(.+)`", message):
        return {"field": _join(path, named[1]), "message": "is not a known field"}
    return {"field": field, "message": _wording(message, _at(shape, path))}


def _wording(message: str, leaf: Any) -> str:
    if kind := re.fullmatch(r"Expected `(.+)`, got `.+`", message):
        names = [_TYPE_NAMES.get(name, name) for name in kind[1].split(" | ")]
        return "must be of type " + " or ".join(names)
    if bound := re.fullmatch(r"Expected `(\w+)` (>=|<=) (-?\d+)", message):
        return ("must be at least " if bound[2] == ">=" else "must be at most ") + bound[3]
    if length := re.fullmatch(r"Expected `(\w+)` of length (>=|<=) (\d+)", message):
        least = length[2] == ">="
        unit = {"str": "characters", "array": "items", "object": "fields"}.get(length[1], "items")
        verb = "be" if unit == "characters" else "have"
        return f"must {verb} {'at least' if least else 'at most'} {length[3]} {unit}"
    if message.startswith("Expected `str` matching regex"):
        return str(_extra(leaf).get("x-pattern-message", "has an invalid format"))
    if message.startswith("Invalid enum value"):
        values = getattr(_leaf(leaf), "values", ())
        return "must be one of " + ", ".join(map(str, values)) if values else "is not an allowed value"
    if "datetime" in message:
        return _DATE_TIME
    if message.startswith(("Expected", "Invalid")):
        return "is not valid"
    return message  # raised by a shape's own __post_init__, in the API's words


def _at(shape: Any, path: str) -> Any:
    """The declared type at `path` (msgspec's `.a[0].b`), or None where it cannot be followed."""
    node: Any = mi.type_info(shape)
    for name, index in _SEGMENT.findall(path):
        node = _leaf(node)
        if name and isinstance(node, mi.StructType):
            node = next((f.type for f in node.fields if f.encode_name == name), None)
        elif index and isinstance(node, mi.ListType):
            node = node.item_type
        elif name and isinstance(node, mi.DictType):
            node = node.value_type
        else:
            return None
    return node


def _leaf(node: Any) -> Any:
    """The type under its constraints, and the one that is not null in an optional field."""
    while True:
        if isinstance(node, mi.Metadata):
            node = node.type
        elif isinstance(node, mi.UnionType):
            kinds = [t for t in node.types if not isinstance(t, mi.NoneType)]
            if len(kinds) != 1:
                return node
            node = kinds[0]
        else:
            return node


def _extra(node: Any) -> dict[str, Any]:
    while isinstance(node, mi.UnionType | mi.Metadata):
        if isinstance(node, mi.Metadata):
            return node.extra_json_schema or {}
        node = next((t for t in node.types if not isinstance(t, mi.NoneType)), None)
    return {}


@functools.cache
def _required(shape: type) -> tuple[str, ...]:
    return tuple(field.encode_name for field in msgspec.structs.fields(shape) if field.required)


@functools.cache
def _datetime_fields(shape: type) -> tuple[tuple[str, str], ...]:
    """(attribute, field name) of each top-level date-time field of `shape`."""
    fields = _struct_fields(shape)
    return tuple((f.name, f.encode_name) for f in fields if isinstance(_leaf(f.type), mi.DateTimeType))


def _struct_fields(shape: type) -> tuple[mi.Field, ...]:
    info = mi.type_info(shape)
    assert isinstance(info, mi.StructType), f"{shape} is not a Struct"
    return info.fields


@functools.cache
def _field_kinds(shape: type) -> dict[str, Any]:
    return {field.encode_name: _leaf(field.type) for field in _struct_fields(shape)}


def _join(path: str, name: str) -> str:
    path = path.lstrip(".")
    return f"{path}.{name}" if path else name
