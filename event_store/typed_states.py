"""Stored events read straight into their values, one ``msgspec`` schema per event class.

The library's path parses a stored state into dicts, then walks them in Python, reviving each
value of a custom type (``{"_type_": …, "_data_": …}``) through its transcoding: on the
analytics bench's log, 12.4 µs an event, of which the parse is 3.3. Here each event class's
fields, read from its type hints, become a ``msgspec`` struct whose custom-typed fields are
those ``{"_type_", "_data_"}`` pairs typed inside (a UUID, a datetime, a decimal, a date, the
event context), so the parser builds the values itself in C; Python only unwraps the pairs.

A state the schema does not fit exactly — a field missing, one more, a value of another type
(``forbid_unknown_fields``, strict types) — is read by the library's path instead, and so is
any class this module cannot type (see :meth:`SchemaBuilder.field`): what comes back is
always what the library would have built. :class:`TypedMapper` keeps its ``to_domain_event``
as the fallback, and the tests compare the two on every event class.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Hashable
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, ClassVar, Literal, Union, cast
from uuid import UUID

import msgspec
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent, find_id_convertor
from eventsourcing.utils import resolve_topic

LIBRARY_FIELDS = ("originator_id", "originator_version")
"""Set by the mapper from the stored event's columns, not read from its state."""

TEXT_FORMS = (UUID, datetime, Decimal, date, str, int)
"""What ``msgspec`` reads from a transcoding's ``_data_`` as the library's transcodings do
(a UUID from its hex, the others from their ISO or decimal text)."""

Unwrap = Callable[[Any], Any]


class UntypedField(TypeError):
    """A field whose type hint this module cannot turn into a schema."""


class StateSchema:
    """One event class's state: the struct ``msgspec`` reads it into, and how each field's
    value is taken out of it (``None``: as read; else a function of what was read)."""

    def __init__(self, struct: type[msgspec.Struct], unwraps: dict[str, Unwrap | None]) -> None:
        self.decoder = msgspec.json.Decoder(struct)
        self.wrapped = tuple((name, unwrap) for name, unwrap in unwraps.items() if unwrap)

    def decode(self, state: bytes) -> dict[str, Any]:
        """The state's values by field name, in the class's field order (as stored)."""
        values = msgspec.structs.asdict(self.decoder.decode(state))
        for name, unwrap in self.wrapped:
            values[name] = unwrap(values[name])
        return values


_data = attrgetter("data")


class SchemaBuilder:
    """Turns type hints into ``msgspec`` types, for the transcodings a transcoder has."""

    def __init__(self, transcoder: JSONTranscoder) -> None:
        self.transcoder = transcoder
        self._pairs: dict[type, type[msgspec.Struct]] = {}
        self._revive: Unwrap | None = getattr(transcoder, "_revive", None)
        """How the transcoder revives the pairs inside a value of no fixed type (ours can:
        :class:`~event_store.transcodings.CrmTranscoder`), one function for every field."""

    def schema(self, cls: type) -> StateSchema:
        hints = typing.get_type_hints(cls)
        if getattr(cls, "class_version", 1) != 1:
            raise UntypedField(f"{cls.__qualname__} is upcast from older versions")
        annotations: list[tuple[str, Any]] = []
        unwraps: dict[str, Unwrap | None] = {}
        for name, hint in hints.items():
            if name in LIBRARY_FIELDS or typing.get_origin(hint) is ClassVar:
                continue
            typed, unwrap = self.field(hint)
            annotations.append((name, typed))
            unwraps[name] = unwrap
        struct = msgspec.defstruct(
            f"{cls.__qualname__}State", annotations, forbid_unknown_fields=True
        )
        return StateSchema(struct, unwraps)

    def field(self, hint: Any) -> tuple[Any, Unwrap | None]:
        """The type ``msgspec`` reads a field as, and how its value is unwrapped."""
        if hint in (str, int, bool):
            return hint, None
        if hint is Any or hint is dict or hint is list:
            return hint, self._revived()
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (Union, types.UnionType):
            if all(arg in (str, int, bool, type(None)) for arg in args):
                return hint, None
            given = [arg for arg in args if arg is not type(None)]
            if len(given) == 1 and len(args) == 2:  # an optional value of another type
                typed, unwrap = self.field(given[0])
                if unwrap is None or unwrap is self._revive:
                    return typed | None, unwrap
                return typed | None, lambda value: None if value is None else unwrap(value)
            raise UntypedField(f"no schema for {hint!r}")
        if origin is list and len(args) == 1:
            item, unwrap = self.field(args[0])
            if unwrap is None:
                return hint, None
            if unwrap is self._revive:
                return list[Any], unwrap
            return list[item], lambda items: [unwrap(i) for i in items]  # type: ignore[valid-type]
        if origin is dict:
            return dict[str, Any], self._revived()
        if isinstance(hint, type) and hint in self.transcoder.types:
            return self._pair(hint), _data
        raise UntypedField(f"no schema for {hint!r}")

    def _revived(self) -> Unwrap:
        """How a value of no fixed type is unwrapped: its encoded pairs revived as the
        library does. A transcoder that cannot leaves such fields to the library's path."""
        if self._revive is None:
            raise UntypedField("the transcoder cannot revive values of no fixed type")
        return self._revive

    def _pair(self, cls: type) -> type[msgspec.Struct]:
        """``{"_type_": <the transcoding's name>, "_data_": <a cls>}``."""
        pair = self._pairs.get(cls)
        if pair is None:
            name = self.transcoder.types[cls].name
            data = self._data_type(cls)
            pair = msgspec.defstruct(
                f"{cls.__name__}Pair",
                [("type", Literal[name]), ("data", data)],
                rename={"type": "_type_", "data": "_data_"},
                forbid_unknown_fields=True,
            )
            self._pairs[cls] = pair
        return pair

    @staticmethod
    def _data_type(cls: type) -> Any:
        """What a transcoding's ``_data_`` holds, read by ``msgspec`` as ``cls`` itself: its
        own text forms for the standard types; a dataclass of those, field by field."""
        if cls in TEXT_FORMS:
            return cls
        if is_dataclass(cls):
            hints = typing.get_type_hints(cls)
            if all(hints[f.name] in TEXT_FORMS for f in fields(cls)):
                return cls
        raise UntypedField(f"no schema for a {cls.__qualname__}")


class TypedMapper(Mapper[UUID]):
    """The library's mapper, reading stored events through each class's schema
    (:class:`StateSchema`), and through the library's path whenever that does not fit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._readers: dict[str, tuple[type, StateSchema] | None] = {}
        self._schemas = (
            SchemaBuilder(self.transcoder) if isinstance(self.transcoder, JSONTranscoder) else None
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        if self.cipher or self.compressor:
            return super().to_domain_event(stored_event)
        read = self._reader(stored_event.topic)
        if read is None:
            return super().to_domain_event(stored_event)
        cls, schema = read
        try:
            state = schema.decode(stored_event.state)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return super().to_domain_event(stored_event)
        originator_id = stored_event.originator_id
        convert = find_id_convertor(cls, cast("Hashable", type(originator_id)))
        state["originator_id"] = convert(originator_id)
        state["originator_version"] = stored_event.originator_version
        event: DomainEventProtocol[UUID] = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    def schema_of(self, topic: str) -> StateSchema | None:
        """The schema this mapper reads a topic's events by (``None``: the library's path)."""
        read = self._reader(topic)
        return None if read is None else read[1]

    def _reader(self, topic: str) -> tuple[type, StateSchema] | None:
        """The class a topic names and its schema, or ``None`` when it has none; built once
        per topic."""
        try:
            return self._readers[topic]
        except KeyError:
            pass
        read = None
        if self._schemas is not None:
            cls = resolve_topic(topic)
            try:
                read = cls, self._schemas.schema(cls)
            except UntypedField:
                read = None
        self._readers[topic] = read
        return read
