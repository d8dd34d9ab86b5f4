"""Typed reads from the parsed YAML document, each failing as one ManifestError line."""

import difflib
from collections.abc import Callable

from .errors import ManifestError
from .platforms import Platform, parse_platforms


def kind_of(value) -> str:
    if value is None:
        return "nothing"
    return {
        dict: "a mapping",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), f"a {type(value).__name__}")


class Fields:
    """Typed reads from the YAML document, each failing as one ManifestError line."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, key: str, message: str) -> ManifestError:
        return ManifestError(self.file, _printable(key), _printable(message))

    def mapping(self, value, key: str, allowed: frozenset | None) -> dict:
        if value is None and allowed is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {kind_of(value)}")
        for name in value:
            if not isinstance(name, str):
                raise self.fail(key, f"keys must be strings, got {name!r}")
            if allowed is not None and name not in allowed:
                raise self.fail(_join(key, name), unknown(name, sorted(allowed)))
        return value

    def string(self, table: dict, key: str, default=None, required: bool = False):
        name = key.rsplit(".", 1)[-1]
        if name not in table:
            if required:
                raise self.fail(key, "missing")
            return default
        value = table[name]
        if not isinstance(value, str) or not value:
            got = kind_of(value) if value != "" else "an empty one"
            raise self.fail(key, f"expected a non-empty string, got {got}")
        return value

    def string_list(self, table: dict, key: str, default: list) -> list[str]:
        name = key.rsplit(".", 1)[-1]
        value = table.get(name, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {kind_of(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                hint = "; quote it" if isinstance(item, (int, float)) else ""
                raise self.fail(f"{key}[{index}]", f"expected a string, got {kind_of(item)}{hint}")
        return value

    def boolean(self, table: dict, key: str, default: bool) -> bool:
        value = table.get(key.rsplit(".", 1)[-1], default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {kind_of(value)}")
        return value

    def integer(self, table: dict, key: str, default: int, low: int, high: int) -> int:
        value = table.get(key.rsplit(".", 1)[-1], default)
        if type(value) is not int or not low <= value <= high:
            got = repr(value) if type(value) is int else kind_of(value)
            raise self.fail(key, f"expected a whole number from {low} to {high}, got {got}")
        return value

    def platforms(self, table: dict, key: str, default: tuple) -> tuple[Platform, ...]:
        """A list of platforms, or one string as `docker build --platform` takes them
        (`linux/amd64,linux/arm64`)."""
        name = key.rsplit(".", 1)[-1]
        if name not in table:
            return default
        if isinstance(table[name], str):
            return self.call(key, parse_platforms, [p.strip() for p in table[name].split(",")])
        return self.call(key, parse_platforms, self.string_list(table, key, []))

    def call(self, key: str, check: Callable, value):
        """Run a ValueError-raising check from tasks.platforms/reference under ``key``."""
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as err:
            raise self.fail(key, str(err)) from None


def exists(check: Callable[[], bool]) -> bool:
    """``Path.is_dir``/``is_file``, False where they raise (a name too long, no access)."""
    try:
        return check()
    except OSError:
        return False


def _printable(text: str) -> str:
    """Escape line breaks and other unprintables in user text, so an error stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def suggest(name: str, allowed) -> str:
    """"; did you mean 'platforms'?" for the closest of ``allowed``, or "" when none is close."""
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(name: str, allowed, what: str = "key") -> str:
    """"unknown key 'x'; did you mean 'y'? (allowed: ...)", allowed in the order given."""
    allowed = list(allowed)
    return f"unknown {what} {name!r}{suggest(name, allowed)} (allowed: {', '.join(allowed)})"
