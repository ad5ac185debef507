"""Typed reads of a decoded JSON request body, raising ValidationException on a wrong type."""

from __future__ import annotations

from collections.abc import Mapping

from metadata_gateway.local_ivs.validation import invalid


class Members:
    """The members of one request structure, read by name with the type the model gives them."""

    __slots__ = ("_path", "_values")

    def __init__(self, values: Mapping[str, object], *, path: str = "") -> None:
        self._values = values
        self._path = path

    def __repr__(self) -> str:
        return f"<Members {self._path or 'body'} keys={sorted(self._values)}>"

    def _field(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def _get(self, name: str, *, required: bool) -> object:
        value = self._values.get(name)
        if value is None and required:
            raise invalid(self._field(name), None, "not be null")
        return value

    def string(self, name: str, *, required: bool = False) -> str | None:
        """Return the string member `name`, or None when it is absent and optional."""
        value = self._get(name, required=required)
        if value is None or isinstance(value, str):
            return value
        raise invalid(self._field(name), value, "be a string")

    def required_string(self, name: str) -> str:
        """Return the string member `name`, which must be present."""
        value = self._get(name, required=True)
        if isinstance(value, str):
            return value
        raise invalid(self._field(name), value, "be a string")

    def boolean(self, name: str) -> bool | None:
        """Return the boolean member `name`, or None when it is absent."""
        value = self._get(name, required=False)
        if value is None or isinstance(value, bool):
            return value
        raise invalid(self._field(name), value, "be a boolean")

    def integer(self, name: str) -> int | None:
        """Return the integer member `name`, or None when it is absent."""
        value = self._get(name, required=False)
        # bool is an int subclass in Python but not an integer in JSON.
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise invalid(self._field(name), value, "be an integer")

    def string_list(self, name: str, *, required: bool = False) -> list[str] | None:
        """Return the list-of-strings member `name`, or None when it is absent and optional."""
        value = self._get(name, required=required)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return [str(item) for item in value]
        raise invalid(self._field(name), None, "be a list of strings")

    def string_map(self, name: str, *, required: bool = False) -> dict[str, str] | None:
        """Return the string-to-string map member `name`, or None when absent and optional."""
        value = self._get(name, required=required)
        if value is None:
            return None
        if isinstance(value, dict) and all(isinstance(item, str) for item in value.values()):
            return {str(key): str(item) for key, item in value.items()}
        raise invalid(self._field(name), None, "be a map of strings to strings")

    def structure(self, name: str) -> Members | None:
        """Return the nested structure member `name`, or None when it is absent."""
        value = self._get(name, required=False)
        if value is None:
            return None
        if isinstance(value, dict):
            return Members(value, path=self._field(name))
        raise invalid(self._field(name), None, "be a structure")
