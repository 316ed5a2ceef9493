"""Answers that mirror their row.

Most answer shapes are a row with its times written as ISO text: naming each column again in every view
only copies the Struct's field list. `view_of` copies by name and leaves to the caller what is computed
or renamed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from giftcards.core.isotime import iso

S = TypeVar("S", bound=msgspec.Struct)


def view_of(cls: type[S], row: Mapping[str, Any], **computed: Any) -> S:
    """`cls` from the column of each field's name (times as ISO text), but `computed` where given; a field
    with a default (the `object` tag, a link only some answers carry) keeps its default."""
    values = dict(computed)
    for field in msgspec.structs.fields(cls):
        if field.name in computed or field.required is False:
            continue
        value = row[field.name]
        values[field.name] = iso(value) if isinstance(value, datetime) else value
    return cls(**values)
