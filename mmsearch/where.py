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
nothing the user typed reaches Milvus raw. `not` is written out by pushing it down to the
comparisons (De Morgan; `not (a > 1)` -> `a <= 1`, `not in` -> `!=` each): Milvus Lite 2.5.1
refuses every `not` node ("unsupported expr proto node"). So a negated ordering, like
`not (size > 42)`, matches the items whose size is 42 or less, never those without a size;
a negated equality (`!=`, `not in`) also matches items without that field; anything else is a WhereError with one line
saying where it went wrong. Fields map to a JSON column (`fields["price"]`) by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from mmsearch.filters import brief, quote

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)
KEYWORDS = {"and", "or", "not", "in", "true", "false"}
NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
# Nesting of parentheses and "not": real filters use 2-3 levels; 5,000 overflowed Python's
# stack and 200 made Milvus fail with an internal error.
MAX_DEPTH = 20
MAX_LENGTH = 4000  # characters; a filter is a line, not a document
MAX_VALUES = 256   # values in one `in [...]` list


class WhereError(ValueError):
    """A --where expression that cannot be used; the message says where and why."""


def _tokens(text: str) -> list[tuple[str, str, int]]:
    if len(text) > MAX_LENGTH:
        raise WhereError(f"--where is too long ({len(text)} characters; at most {MAX_LENGTH})")
    bad = next((c for c in text if ord(c) < 32 and c not in "\t\n\r" or ord(c) == 127), None)
    if bad is not None:
        raise WhereError(f"--where has a control character (code {ord(bad)}) at column "
                         f"{text.index(bad) + 1}; type the filter as plain text")
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            pos += len(text[pos:]) - len(text[pos:].lstrip())
            hint = ""
            if text[pos] == "=" and text[pos:pos + 2] != "==":  # price = 3 -> price == 3
                hint = f" (to compare, write ==: {brief(text[:pos] + '==' + text[pos + 1:], 40)})"
            elif text[pos] in ".," and out and out[-1][0] == "num":  # 1.250.000: a price as shown
                grouped = re.match(r"-?\d{1,3}(?:[.,]\d{3})+", text[out[-1][2] - 1:])
                if grouped:
                    hint = (f" (write {re.sub('[.,]', '', grouped.group())} without "
                            "thousands separators)")
            raise WhereError(f"cannot read --where at column {pos + 1}: "
                             f"{brief(text[pos:pos + 12], 12)}{hint}")
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
    depth = 0

    def deeper() -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise WhereError(f"--where nests too deeply (more than {MAX_DEPTH} levels of "
                             "parentheses and not)")

    def peek(kind: str, value: str | None = None) -> bool:
        return pos < len(tokens) and tokens[pos][0] == kind and \
            (value is None or tokens[pos][1] == value)

    def take(kind: str, value: str | None = None, what: str = "") -> str:
        nonlocal pos
        if not peek(kind, value):
            found = f"{brief(tokens[pos][1])} at column {tokens[pos][2]}" if pos < len(tokens) \
                else "the end"
            raise WhereError(f"--where expected {what or value or kind}, found {found}")
        pos += 1
        return tokens[pos - 1][1]

    def value() -> str:
        if peek("num"):
            return take("num")
        if peek("str"):
            raw = take("str")
            return quote(re.sub(r"\\(.)", r"\1", raw[1:-1]))
        if peek("kw", "true") or peek("kw", "false"):
            return take("kw")
        return take("value", what="a number, 'text', true or false")

    def comparison(neg: bool) -> str:
        name = field(take("name", what="a field name"))
        if peek("op"):
            op = take("op")
            return f"{name} {NEGATED[op] if neg else op} {value()}"
        negated = peek("kw", "not")
        if negated:
            take("kw", "not")
        take("kw", "in", what="==, !=, <, <=, >, >= or in")
        take("punct", "[")
        values = [value()]
        while peek("punct", ","):
            take("punct", ",")
            values.append(value())
            if len(values) > MAX_VALUES:
                raise WhereError(f"--where: at most {MAX_VALUES} values in one in [...] list")
        take("punct", "]")
        # as equalities: Milvus Lite's `in` takes plain columns only, not JSON paths
        if negated != neg:
            return "(" + " and ".join(f"{name} != {v}" for v in values) + ")"
        return "(" + " or ".join(f"{name} == {v}" for v in values) + ")"

    def factor(neg: bool) -> str:
        nonlocal depth
        if peek("kw", "not"):
            take("kw", "not")
            deeper()
            inner = factor(not neg)
            depth -= 1
            return inner
        if peek("punct", "("):
            take("punct", "(")
            deeper()
            inner = expr(neg)
            depth -= 1
            take("punct", ")")
            return f"({inner})"
        return comparison(neg)

    def term(neg: bool) -> str:
        parts = [factor(neg)]
        while peek("kw", "and"):
            take("kw", "and")
            parts.append(factor(neg))
        if neg:  # not (a and b) = not a or not b
            return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"
        return " and ".join(parts)

    def expr(neg: bool = False) -> str:
        parts = [term(neg)]
        while peek("kw", "or"):
            take("kw", "or")
            parts.append(term(neg))
        return (" and " if neg else " or ").join(parts)  # not (a or b) = not a and not b

    result = expr()
    if pos != len(tokens):
        grouped = re.match(r"-?\d{1,3}(?:,\d{3})+", text[tokens[pos - 1][2] - 1:]) \
            if tokens[pos][1] == "," and tokens[pos - 1][0] == "num" else None
        hint = f" (write {grouped.group().replace(',', '')} without thousands separators)" \
            if grouped else ""
        raise WhereError(f"--where has something extra at column {tokens[pos][2]}: "
                         f"{brief(tokens[pos][1])}{hint}")
    return result
