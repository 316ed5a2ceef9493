"""Request bodies and query strings checked against the very JSON Schemas the OpenAPI document shows.

One declaration serves both, so the documentation cannot drift from what the service accepts. Only the
subset of JSON Schema the API uses is implemented; every violation names its field.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from giftcards.core.errors import ValidationError

Schema = dict[str, Any]

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "boolean": (bool,),
    "null": (type(None),),
}


def validate(schema: Schema, value: Any) -> Any:
    """Return `value` when it conforms, else raise ValidationError listing every problem."""
    errors: list[dict[str, str]] = []
    _check(schema, value, "", errors)
    if errors:
        raise ValidationError(errors)
    return value


def parse_query(schema: Schema, params: dict[str, str]) -> dict[str, Any]:
    """Query values arrive as text: convert the integer and boolean ones, then validate as an object."""
    props = schema.get("properties", {})
    converted: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for name, raw in params.items():
        kind = props.get(name, {}).get("type")
        if kind == "integer":
            if not re.fullmatch(r"-?[0-9]{1,18}", raw):
                errors.append({"field": name, "message": "must be a whole number"})
                continue
            converted[name] = int(raw)
        elif kind == "boolean":
            if raw not in ("true", "false"):
                errors.append({"field": name, "message": "must be true or false"})
                continue
            converted[name] = raw == "true"
        else:
            converted[name] = raw
    if errors:
        raise ValidationError(errors)
    return validate(schema, converted)


def _check(schema: Schema, value: Any, path: str, errors: list[dict[str, str]]) -> None:
    field = path or "body"
    kinds = schema.get("type")
    if kinds is not None and not _has_type(value, kinds):
        expected = kinds if isinstance(kinds, str) else " or ".join(kinds)
        errors.append({"field": field, "message": f"must be of type {expected}"})
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append({"field": field, "message": "must be one of " + ", ".join(map(str, schema["enum"]))})
        return
    if isinstance(value, str):
        _check_string(schema, value, field, errors)
    elif isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append({"field": field, "message": f"must be at least {schema['minimum']}"})
        if "maximum" in schema and value > schema["maximum"]:
            errors.append({"field": field, "message": f"must be at most {schema['maximum']}"})
    elif isinstance(value, dict):
        _check_object(schema, value, path, errors)
        if "oneOf" in schema and sum(_conforms(option, value) for option in schema["oneOf"]) != 1:
            errors.append(
                {"field": field, "message": schema.get("x-oneof-message", "matches no allowed form")}
            )
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append({"field": field, "message": f"must have at most {schema['maxItems']} items"})
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append({"field": field, "message": f"must have at least {schema['minItems']} items"})
        for index, item in enumerate(value):
            _check(schema.get("items", {}), item, f"{field}[{index}]", errors)


def _check_string(schema: Schema, value: str, field: str, errors: list[dict[str, str]]) -> None:
    if "\x00" in value:  # PostgreSQL text cannot store it; refuse it here rather than fail there
        errors.append({"field": field, "message": "must not contain the NUL character"})
        return
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append({"field": field, "message": f"must be at least {schema['minLength']} characters"})
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append({"field": field, "message": f"must be at most {schema['maxLength']} characters"})
    if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        errors.append({"field": field, "message": schema.get("x-pattern-message", "has an invalid format")})
    if schema.get("format") == "date-time" and parse_datetime(value) is None:
        errors.append({"field": field, "message": "must be an ISO 8601 date-time with a time zone"})


def _check_object(schema: Schema, value: dict[str, Any], path: str, errors: list[dict[str, str]]) -> None:
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            errors.append({"field": _join(path, name), "message": "is required"})
    for name, item in value.items():
        if name in props:
            _check(props[name], item, _join(path, name), errors)
        elif schema.get("additionalProperties") is False:
            errors.append({"field": _join(path, name), "message": "is not a known field"})
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(
            {"field": path or "body", "message": f"must have at most {schema['maxProperties']} fields"}
        )


def _conforms(schema: Schema, value: Any) -> bool:
    probe: list[dict[str, str]] = []
    _check(schema, value, "", probe)
    return not probe


def _has_type(value: Any, kinds: str | list[str]) -> bool:
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        if kind == "integer":
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif isinstance(value, _TYPES[kind]):
            return True
    return False


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def parse_datetime(value: str) -> datetime | None:
    """ISO 8601 with an explicit offset ('Z' allowed); naive times are ambiguous and refused."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
