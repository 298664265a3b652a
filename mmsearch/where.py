"""`--where EXPR`: a small filter language over item fields, translated to Milvus.

Grammar (case-insensitive keywords):

    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | comparison
    comparison := FIELD OP VALUE | FIELD ["not"] "in" "[" VALUE ("," VALUE)* "]"
    OP         := "==" | "!=" | "<" | "<=" | ">" | ">="
    VALUE      := number | 'text' | "text" | true | false
    FIELD      := a name of letters, digits and "_" (not starting with a digit)

e.g. `price < 200000 and brand == 'Minuet'`, `brand in ['Minuet', 'Kaki'] or not (size > 42)`.
The expression is parsed into tokens and written out again with every value re-quoted, so
nothing the user typed reaches Milvus raw; anything else is a WhereError with one line
saying where it went wrong. Fields map to a JSON column (`fields["price"]`) by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)
KEYWORDS = {"and", "or", "not", "in", "true", "false"}


class WhereError(ValueError):
    """A --where expression that cannot be used; the message says where and why."""


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise WhereError(f"cannot read --where at column {pos + 1}: {text[pos:pos + 12]!r}")
        kind = m.lastgroup
        value, column = m.group(kind), m.start(kind) + 1
        if kind == "name" and value.lower() in KEYWORDS:
            kind, value = "kw", value.lower()
        out.append((kind, value, column))
        pos = m.end()
    return out


def json_field(column: str = "fields") -> Callable[[str], str]:
    return lambda name: f"{column}[{json.dumps(name)}]"


def translate(text: str, field: Callable[[str], str] = json_field()) -> str:
    """The Milvus filter expression for a --where expression."""
    tokens = _tokens(text)
    if not tokens:
        raise WhereError("--where is empty")
    pos = 0

    def peek(kind: str, value: str | None = None) -> bool:
        return pos < len(tokens) and tokens[pos][0] == kind and \
            (value is None or tokens[pos][1] == value)

    def take(kind: str, value: str | None = None, what: str = "") -> str:
        nonlocal pos
        if not peek(kind, value):
            found = f"{tokens[pos][1]!r} at column {tokens[pos][2]}" if pos < len(tokens) \
                else "the end"
            raise WhereError(f"--where expected {what or value or kind}, found {found}")
        pos += 1
        return tokens[pos - 1][1]

    def value() -> str:
        if peek("num"):
            return take("num")
        if peek("str"):
            raw = take("str")
            return json.dumps(re.sub(r"\\(.)", r"\1", raw[1:-1]), ensure_ascii=False)
        if peek("kw", "true") or peek("kw", "false"):
            return take("kw")
        return take("value", what="a number, 'text', true or false")

    def comparison() -> str:
        name = field(take("name", what="a field name"))
        if peek("op"):
            return f"{name} {take('op')} {value()}"
        negated = peek("kw", "not")
        if negated:
            take("kw", "not")
        take("kw", "in", what="==, !=, <, <=, >, >= or in")
        take("punct", "[")
        values = [value()]
        while peek("punct", ","):
            take("punct", ",")
            values.append(value())
        take("punct", "]")
        # as equalities: Milvus Lite's `in` takes plain columns only, not JSON paths
        either = " or ".join(f"{name} == {v}" for v in values)
        return f"not ({either})" if negated else f"({either})"

    def factor() -> str:
        if peek("kw", "not"):
            take("kw", "not")
            return f"not ({factor()})"
        if peek("punct", "("):
            take("punct", "(")
            inner = expr()
            take("punct", ")")
            return f"({inner})"
        return comparison()

    def term() -> str:
        parts = [factor()]
        while peek("kw", "and"):
            take("kw", "and")
            parts.append(factor())
        return " and ".join(parts)

    def expr() -> str:
        parts = [term()]
        while peek("kw", "or"):
            take("kw", "or")
            parts.append(term())
        return " or ".join(parts)

    result = expr()
    if pos != len(tokens):
        raise WhereError(f"--where has something extra at column {tokens[pos][2]}: "
                         f"{tokens[pos][1]!r}")
    return result
