"""The base model of every request and response type, and shared field types.

:class:`SubscriptableBaseModel` gives attribute *and* dict-style access with
ollama-python's exact semantics, so code written for ``ollama`` keeps working
(``resp["message"]["content"]``, ``"tool_calls" in msg``, ``resp.get("x")``).

Serialisation gives the spec's JSON (the Go ``api`` package):

- field names are the spec's JSON names (``by_alias`` is the default);
- ``model_dump_json()`` leaves out unset (``None``) fields by default;
- with ``exclude_none=True``, a field that Go tags ``omitempty`` is also left
  out when it holds its zero value (``0``, ``""``, ``False``, ``[]``, ``{}``),
  as Go's ``encoding/json`` does. :meth:`SubscriptableBaseModel.to_dict` gives
  the same object as Python values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, SerializationInfo, model_serializer

__all__ = ["SubscriptableBaseModel", "Timestamp"]


def _is_zero(value: Any) -> bool:
    # Go's omitempty: false, 0, "", and empty arrays/maps are left out.
    if value is None or value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) == 0
    return False


class SubscriptableBaseModel(BaseModel):
    """Pydantic model with dict-style access, as in ollama-python.

    >>> from llamanative.types.messages import Message
    >>> msg = Message(role="user")
    >>> msg["role"]
    'user'
    >>> "content" in msg
    False
    >>> msg.get("content", "x") is None
    True
    >>> msg["content"] = "hi"
    >>> "content" in msg, msg["content"]
    (True, 'hi')
    """

    model_config = ConfigDict(
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        protected_namespaces=(),
    )

    _omitempty: ClassVar[frozenset[str]] = frozenset()
    """Field names that Go tags ``omitempty``: left out of the wire JSON when zero."""

    _key_aliases: ClassVar[dict[str, str]] = {}
    """Extra keys accepted by ``[]``/``in``/``get``, mapped to field names."""

    _key_order: ClassVar[tuple[str, ...]] = ()
    """Field names in the order the spec's JSON lists them, when it differs from declaration order."""

    @classmethod
    def _field_for_key(cls, key: str) -> str | None:
        """The field name that ``key`` (a field name, a JSON name or a key alias) refers to."""
        fields = cls.model_fields
        if key in fields:
            return key
        if key in cls._key_aliases:
            return cls._key_aliases[key]
        for name, info in fields.items():
            if info.alias == key or info.serialization_alias == key:
                return name
        return None

    def __getitem__(self, key: str) -> Any:
        """The field's value if ``key in self``, else ``KeyError`` (ollama-python semantics)."""
        name = self._field_for_key(key)
        if name is not None and key in self:
            return getattr(self, name)
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        """Set a field; ``key`` may be a field name or its JSON name."""
        setattr(self, self._field_for_key(key) or key, value)

    def __contains__(self, key: object) -> bool:
        """True if the field was set, or if its default is not ``None``.

        An unset optional field is not "in" the model, even though its
        attribute reads as ``None``.
        """
        if not isinstance(key, str):
            return False
        name = self._field_for_key(key)
        if name is None:
            return False
        if name in self.model_fields_set:
            return True
        return self.__class__.model_fields[name].default is not None

    def get(self, key: str, default: Any = None) -> Any:
        """The field's value (``None`` for an unset optional field); ``default`` for an unknown key.

        Unlike ollama-python, only fields (and their JSON names) are looked
        up, not methods or other attributes.
        """
        name = self._field_for_key(key)
        return default if name is None else getattr(self, name)

    @model_serializer(mode="wrap")
    def _serialize(self, handler: Any, info: SerializationInfo) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        fields = self.__class__.model_fields
        if info.exclude_none and self._omitempty:
            for name in self._omitempty:
                for key in (fields[name].alias or name, name):
                    if key in data and _is_zero(data[key]):
                        del data[key]
        if self._key_order:
            keys = [fields[n].alias or n for n in self._key_order]
            data = {k: data[k] for k in (*keys, *data) if k in data}
        return data

    def model_dump_json(self, *, exclude_none: bool = True, by_alias: bool | None = True, **kwargs: Any) -> str:
        """The spec's JSON text.

        Same as pydantic's, except that ``exclude_none`` and ``by_alias``
        default to ``True``: unset fields and Go ``omitempty`` zero values are
        left out, and the spec's field names are used.
        """
        return super().model_dump_json(exclude_none=exclude_none, by_alias=by_alias, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The spec's JSON object as Python values (what ``json.loads(self.model_dump_json())`` gives)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


def _aware(value: datetime) -> datetime:
    # A naive datetime is local time in Python; make the offset explicit so
    # the JSON is RFC 3339, as Go's time.Time marshals.
    return value if value.tzinfo is not None else value.astimezone()


Timestamp = Annotated[datetime, AfterValidator(_aware)]
"""A ``datetime`` that is always timezone-aware (naive input is taken as local
time); serialised as RFC 3339 (``2024-05-01T12:00:00.5Z``)."""
