"""The Compute `instances.list` filter: `<field> <op> <value> [AND <field> <op> <value> ...]`.

Reference section 4: fields `id, name, created_at, status, zone_id, platform_id, host_id`; operators `=`, `!=`,
`IN`, `NOT IN`; strings in double or single quotes with C escapes. Labels are NOT a filter field.
Keywords (AND, IN, NOT) are matched case-insensitively; unquoted values (`status=RUNNING`) are accepted as
strings; `IN`/`NOT IN` take a parenthesised, comma-separated list (a single bare value is also accepted).
Every malformed input raises FilterError (-> INVALID_ARGUMENT); nothing else may escape from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_FILTER_LENGTH = 1000
FIELDS = ("id", "name", "created_at", "status", "zone_id", "platform_id", "host_id")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_WORD_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:+-")
_HEX = set("0123456789abcdefABCDEF")
_OCT = set("01234567")


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class Token:
    kind: str  # "word" | "str" | "op" | "(" | ")" | ","
    text: str
    pos: int


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # "=" | "!=" | "IN" | "NOT IN"
    values: tuple[str, ...]


def _read_escape(s: str, i: int) -> tuple[str, int]:
    """`s[i]` is the character after a backslash; returns the decoded text and the next index."""
    if i >= len(s):
        raise FilterError("unterminated escape sequence")
    c = s[i]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], i + 1
    if c in _OCT:
        j = i
        while j < len(s) and j < i + 3 and s[j] in _OCT:
            j += 1
        return chr(int(s[i:j], 8)), j
    widths = {"x": 2, "u": 4, "U": 8}
    if c in widths:
        digits = s[i + 1 : i + 1 + widths[c]]
        if len(digits) != widths[c] or not set(digits) <= _HEX:
            raise FilterError(f"bad \\{c} escape at {i}")
        value = int(digits, 16)
        if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise FilterError(f"escape out of range at {i}")
        return chr(value), i + 1 + widths[c]
    raise FilterError(f"unknown escape sequence \\{c} at {i}")


def tokenize(s: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()," or c == "=":
            tokens.append(Token(c if c != "=" else "op", c, i))
            i += 1
        elif c == "!":
            if s[i + 1 : i + 2] != "=":
                raise FilterError(f"unexpected '!' at {i}")
            tokens.append(Token("op", "!=", i))
            i += 2
        elif c in "\"'":
            start, quote, out = i, c, []
            i += 1
            while True:
                if i >= len(s):
                    raise FilterError(f"unterminated string starting at {start}")
                ch = s[i]
                if ch == quote:
                    i += 1
                    break
                if ch == "\\":
                    text, i = _read_escape(s, i + 1)
                    out.append(text)
                else:
                    out.append(ch)
                    i += 1
            tokens.append(Token("str", "".join(out), start))
        elif c in _WORD_CHARS:
            start = i
            while i < len(s) and s[i] in _WORD_CHARS:
                i += 1
            tokens.append(Token("word", s[start:i], start))
        else:
            raise FilterError(f"unexpected character {c!r} at {i}")
    return tokens


def parse(s: str) -> list[Condition]:
    """Parse a filter into conditions joined by AND. An empty/blank filter is no condition at all."""
    if len(s) > MAX_FILTER_LENGTH:
        raise FilterError(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    tokens = tokenize(s)
    if not tokens:
        return []
    conditions: list[Condition] = []
    pos = 0

    def peek() -> Token | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(what: str) -> Token:
        nonlocal pos
        tok = peek()
        if tok is None:
            raise FilterError(f"unexpected end of filter, expected {what}")
        pos += 1
        return tok

    def is_kw(tok: Token | None, kw: str) -> bool:
        return tok is not None and tok.kind == "word" and tok.text.upper() == kw

    def value() -> str:
        tok = take("a value")
        if tok.kind not in ("str", "word"):
            raise FilterError(f"expected a value at {tok.pos}, got {tok.text!r}")
        return tok.text

    while True:
        ftok = take("a field name")
        if ftok.kind != "word":
            raise FilterError(f"expected a field name at {ftok.pos}, got {ftok.text!r}")
        field = ftok.text
        if field == "labels" or field.startswith("labels."):
            raise FilterError("labels are not a filter field; filter on labels on the client side")
        if field not in FIELDS:
            raise FilterError(f"unknown filter field {field!r}; allowed: {', '.join(FIELDS)}")
        optok = take("an operator")
        if optok.kind == "op":
            op = optok.text
        elif is_kw(optok, "IN"):
            op = "IN"
        elif is_kw(optok, "NOT") and is_kw(peek(), "IN"):
            pos += 1
            op = "NOT IN"
        else:
            raise FilterError(f"expected one of = != IN NOT IN at {optok.pos}, got {optok.text!r}")
        values: list[str] = []
        lead = peek()
        if op in ("IN", "NOT IN") and lead is not None and lead.kind == "(":
            pos += 1
            values.append(value())
            while True:
                sep = take("',' or ')'")
                if sep.kind == ")":
                    break
                if sep.kind != ",":
                    raise FilterError(f"expected ',' or ')' at {sep.pos}")
                values.append(value())
        else:
            values.append(value())
        if field == "created_at":
            for v in values:
                parse_timestamp(v)
        conditions.append(Condition(field, op, tuple(values)))
        nxt = peek()
        if nxt is None:
            return conditions
        if not is_kw(nxt, "AND"):
            raise FilterError(f"expected AND at {nxt.pos}, got {nxt.text!r}")
        pos += 1


def parse_timestamp(value: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise FilterError(f"not an RFC3339 timestamp: {value!r}") from exc
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts


def compile_filter(s: str) -> Callable[[Mapping[str, str]], bool]:
    """A predicate over a mapping of filter field -> string value (created_at as RFC3339)."""
    conditions = parse(s)

    def match(fields: Mapping[str, str]) -> bool:
        for cond in conditions:
            actual = fields.get(cond.field, "")
            if cond.field == "created_at":
                at = parse_timestamp(actual) if actual else None
                hit = any(at == parse_timestamp(v) for v in cond.values)
            else:
                hit = actual in cond.values
            if cond.op in ("=", "IN") and not hit:
                return False
            if cond.op in ("!=", "NOT IN") and hit:
                return False
        return True

    return match
