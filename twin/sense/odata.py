"""The OData query options of SensorThings API 1.1, parsed into SQL with bound parameters.

``$filter`` takes comparisons (``eq ne gt ge lt le``), ``and``/``or``/``not``, parentheses,
``geo.intersects(location, geography'POLYGON((...))')`` (also ``st_intersects``), and
``during(phenomenonTime, 2024-01-01T00:00:00Z/2024-01-02T00:00:00Z)`` besides time ranges
written as two comparisons. Properties are looked up in a table of fields the caller passes
(an entity's filterable properties, each an SQL expression of our own and a type); literals
never reach the SQL text, they become ``%(fN)s`` parameters. ``$orderby``, ``$select``,
``$expand`` (one level, with ``$select;$filter;$orderby;$top`` inside), ``$top``, ``$skip`` and
``$count`` are checked here too. Every error names the option and says what is wrong where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import shapely
import shapely.wkt

FieldType = Literal["int", "float", "text", "time", "geom", "json"]
MAX_TOP = 10_000
MAX_FILTER = 4_000

COMPARISONS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
GEO_FUNCTIONS = {"geo.intersects": "ST_Intersects", "st_intersects": "ST_Intersects",
                 "st_within": "ST_Within", "st_contains": "ST_Contains"}  # fmt: skip


class ODataError(ValueError):
    """A malformed query option; ``option`` is its name (``$filter``, ``$top``, ...)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


@dataclass(frozen=True)
class Field:
    """A filterable property: an SQL expression (ours, never input) and its type."""

    sql: str
    type: FieldType
    nullable: bool = True


TOKEN = re.compile(
    r"""\s*(?:
      (?P<geo>geography'(?:[^']|'')*')
    | (?P<str>'(?:[^']|'')*')
    | (?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?
               (?:/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
    | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_@][A-Za-z0-9_.@]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)


@dataclass
class Tok:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ODataError("$filter", f"unexpected character {text[pos:].lstrip()[:1]!r} at "
                             f"position {pos}")  # fmt: skip
        kind = m.lastgroup or "punct"
        out.append(Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def parse_time(text: str, option: str = "$filter") -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ODataError(option, f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise ODataError(option, f"time {text!r} needs a time zone (Z or +hh:mm)")
    return value


class FilterParser:
    """Recursive descent over ``or`` > ``and`` > ``not`` > comparison > primary."""

    def __init__(self, text: str, fields: dict[str, Field]) -> None:
        if len(text) > MAX_FILTER:
            raise ODataError("$filter", f"longer than {MAX_FILTER} characters")
        self.toks = tokenize(text)
        self.i = 0
        self.fields = fields
        self.params: dict[str, Any] = {}

    # -- helpers
    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self, what: str) -> Tok:
        tok = self.peek()
        if tok is None:
            raise ODataError("$filter", f"ended early: expected {what}")
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.next(repr(text))
        if tok.text != text:
            raise ODataError("$filter", f"expected {text!r} at position {tok.pos}, got "
                             f"{tok.text!r}")  # fmt: skip

    def word(self, *words: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok.kind == "name" and tok.text.lower() in words:
            self.i += 1
            return tok.text.lower()
        return None

    def bind(self, value: Any) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    # -- grammar
    def parse(self) -> tuple[str, dict[str, Any]]:
        if not self.toks:
            raise ODataError("$filter", "empty expression")
        sql = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise ODataError("$filter", f"unexpected {tok.text!r} at position {tok.pos}")
        return sql, self.params

    def or_expr(self) -> str:
        parts = [self.and_expr()]
        while self.word("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_expr(self) -> str:
        parts = [self.not_expr()]
        while self.word("and"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def not_expr(self) -> str:
        if self.word("not"):
            return f"(NOT {self.not_expr()})"
        return self.comparison()

    def comparison(self) -> str:
        left = self.operand()
        tok = self.peek()
        if tok is not None and tok.kind == "name" and tok.text.lower() in COMPARISONS:
            self.i += 1
            right = self.operand()
            return self.compare(left, COMPARISONS[tok.text.lower()], right, tok)
        if left[0] != "bool":
            where = f"at position {tok.pos}, got {tok.text!r}" if tok else "at the end"
            raise ODataError("$filter", f"expected a comparison (eq, ne, gt, ge, lt, le) {where}")
        return left[1]

    def compare(self, left: tuple[str, Any], op: str, right: tuple[str, Any], tok: Tok) -> str:
        if left[0] != "field" and right[0] == "field":
            flipped = {">": "<", "<": ">", ">=": "<=", "<=": ">="}.get(op, op)
            return self.compare(right, flipped, left, tok)
        if left[0] != "field":
            raise ODataError("$filter", f"comparison at position {tok.pos} needs a property on "
                             "one side")  # fmt: skip
        fld: Field = left[1]
        kind, value = right
        if kind == "field":
            other: Field = value
            if other.type != fld.type:
                raise ODataError("$filter", f"cannot compare {fld.type} with {other.type}")
            return f"({fld.sql} {op} {other.sql})"
        if kind == "null":
            if op not in ("=", "<>"):
                raise ODataError("$filter", "null can only be compared with eq or ne")
            return f"({fld.sql} IS {'' if op == '=' else 'NOT '}NULL)"
        literal = self.coerce(fld, kind, value, tok)
        return f"({fld.sql} {op} {self.bind(literal)})"

    def coerce(self, fld: Field, kind: str, value: Any, tok: Tok) -> Any:
        if fld.type in ("int", "float"):
            if kind != "num":
                raise ODataError("$filter", f"a number is needed near position {tok.pos}, got "
                                 f"{kind} {value!r}")  # fmt: skip
            if fld.type == "int":
                if not float(value).is_integer() or abs(float(value)) >= 2**63:
                    raise ODataError("$filter", f"{value!r} is not an integer id")
                return int(float(value))
            return float(value)
        if fld.type == "time":
            if kind != "time" or "/" in value:
                raise ODataError("$filter", f"a time (2024-01-01T00:00:00Z) is needed near "
                                 f"position {tok.pos}, got {value!r}")  # fmt: skip
            return parse_time(value)
        if fld.type == "text":
            if kind != "str":
                raise ODataError("$filter", f"a quoted string is needed near position {tok.pos}, "
                                 f"got {value!r}")  # fmt: skip
            return value
        raise ODataError("$filter", f"this property ({fld.type}) cannot be compared")

    def operand(self) -> tuple[str, Any]:
        tok = self.next("a property, a value or '('")
        if tok.text == "(":
            sql = self.or_expr()
            self.expect(")")
            return ("bool", sql)
        if tok.kind == "str":
            return ("str", tok.text[1:-1].replace("''", "'"))
        if tok.kind in ("num", "time"):
            return (tok.kind, tok.text)
        if tok.kind == "geo":
            raise ODataError("$filter", f"a geography literal at position {tok.pos} belongs "
                             "inside geo.intersects(...)")  # fmt: skip
        if tok.kind != "name":
            raise ODataError("$filter", f"unexpected {tok.text!r} at position {tok.pos}")
        low = tok.text.lower()
        if low in ("true", "false"):
            return ("bool", "TRUE" if low == "true" else "FALSE")
        if low == "null":
            return ("null", None)
        nxt = self.peek()
        if nxt is not None and nxt.text == "(":
            return ("bool", self.function(low, tok))
        fld = self.fields.get(tok.text)
        if fld is None:
            known = ", ".join(sorted(self.fields))
            raise ODataError("$filter", f"unknown property {tok.text!r} at position {tok.pos} "
                             f"(known: {known})")  # fmt: skip
        return ("field", fld)

    def function(self, name: str, tok: Tok) -> str:
        self.expect("(")
        if name in GEO_FUNCTIONS:
            fld = self.field_arg(("geom",), name)
            self.expect(",")
            lit = self.next("geography'...'")
            if lit.kind != "geo":
                raise ODataError("$filter", f"{name} needs geography'WKT' as its second "
                                 f"argument, got {lit.text!r}")  # fmt: skip
            wkt = lit.text[len("geography'") : -1].replace("''", "'")
            try:
                shape = shapely.wkt.loads(wkt)
            except shapely.errors.ShapelyError as exc:
                raise ODataError("$filter", f"{name}: not valid WKT: {wkt[:80]!r} "
                                 f"({str(exc)[:80]})") from None  # fmt: skip
            if shape.is_empty:
                raise ODataError("$filter", f"{name}: empty geometry")
            self.expect(")")
            return f"{GEO_FUNCTIONS[name]}({fld.sql}, ST_GeomFromText({self.bind(wkt)}, 4326))"
        if name == "during":
            fld = self.field_arg(("time",), name)
            self.expect(",")
            lit = self.next("an interval start/end")
            if lit.kind != "time" or "/" not in lit.text:
                raise ODataError("$filter", f"during needs an interval 2024-01-01T00:00:00Z/"
                                 f"2024-01-02T00:00:00Z, got {lit.text!r}")  # fmt: skip
            start_text, end_text = lit.text.split("/")
            start, end = parse_time(start_text), parse_time(end_text)
            if end < start:
                raise ODataError("$filter", f"interval {lit.text!r} ends before it starts")
            self.expect(")")
            return f"({fld.sql} >= {self.bind(start)} AND {fld.sql} < {self.bind(end)})"
        raise ODataError("$filter", f"unknown function {name!r} at position {tok.pos} (known: "
                         f"{', '.join([*GEO_FUNCTIONS, 'during'])})")  # fmt: skip

    def field_arg(self, types: tuple[str, ...], func: str) -> Field:
        tok = self.next("a property")
        fld = self.fields.get(tok.text)
        if fld is None or fld.type not in types:
            wanted = [n for n, f in self.fields.items() if f.type in types]
            raise ODataError("$filter", f"{func}: first argument must be one of "
                             f"{', '.join(wanted) or '(none here)'}, got {tok.text!r}")  # fmt: skip
        return fld


def parse_filter(text: str, fields: dict[str, Field]) -> tuple[str, dict[str, Any]]:
    """``$filter`` text -> (SQL boolean expression, parameters)."""
    return FilterParser(text, fields).parse()


def parse_orderby(text: str, fields: dict[str, Field]) -> list[tuple[str, bool]]:
    """``name [asc|desc], ...`` -> [(SQL expression, descending)]; nulls sort last (an SQL
    suffix added to nullable properties only, so that an index still serves the others)."""
    out: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise ODataError("$orderby", f"expected 'property [asc|desc]', got {part.strip()!r}")
        fld = fields.get(words[0])
        if fld is None or fld.type in ("geom", "json"):
            sortable = ", ".join(n for n, f in fields.items() if f.type not in ("geom", "json"))
            raise ODataError("$orderby", f"cannot sort by {words[0]!r} (sortable: {sortable})")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise ODataError("$orderby", f"direction must be asc or desc, got {words[1]!r}")
        out.append((fld.sql + (" NULLS LAST" if fld.nullable else ""), direction == "desc"))
    return out


def parse_select(text: str, allowed: set[str]) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    for n in names:
        if n not in allowed:
            raise ODataError("$select", f"unknown property {n!r} (known: "
                             f"{', '.join(sorted(allowed))})")  # fmt: skip
    return list(dict.fromkeys(names))


def parse_int(option: str, text: str, *, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ODataError(option, f"expected an integer, got {text[:40]!r}") from None
    if not low <= value <= high:
        raise ODataError(option, f"must be between {low} and {high}, got {value}")
    return value


def parse_bool(option: str, text: str) -> bool:
    low = text.lower()
    if low not in ("true", "false"):
        raise ODataError(option, f"expected true or false, got {text[:40]!r}")
    return low == "true"


@dataclass
class Options:
    """The query options of one request (or of one ``$expand`` item)."""

    filter: str | None = None
    orderby: str | None = None
    select: str | None = None
    expand: list[Expand] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False


@dataclass
class Expand:
    name: str
    options: Options


def split_top_level(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
            if depth < 0:
                raise ODataError("$expand", f"unbalanced ')' at position {i}")
        elif not quote and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quote:
        raise ODataError("$expand", "unbalanced parentheses or quotes")
    parts.append(text[start:])
    return parts


def parse_expand(text: str, *, nested: bool = False) -> list[Expand]:
    out: list[Expand] = []
    for item in split_top_level(text, ","):
        item = item.strip()
        m = re.fullmatch(r"([A-Za-z]+)(?:\((.*)\))?", item, re.DOTALL)
        if m is None:
            raise ODataError("$expand", f"expected 'Name' or 'Name($top=..;$select=..)', got "
                             f"{item[:60]!r}")  # fmt: skip
        name, inner = m.group(1), m.group(2)
        opts = Options()
        if inner:
            raw: dict[str, str] = {}
            for part in split_top_level(inner, ";"):
                key, eq, value = part.strip().partition("=")
                if not eq:
                    raise ODataError("$expand", f"expected $option=value in {name}(...), got "
                                     f"{part[:40]!r}")  # fmt: skip
                raw[key.strip()] = value.strip()
            opts = parse_options(raw, nested=True)
        out.append(Expand(name, opts))
    if nested and out:
        raise ODataError("$expand", "only one level of $expand is supported")
    return out


def parse_options(raw: dict[str, str], *, nested: bool = False) -> Options:
    """The ``$`` options of a query string (other keys are ignored)."""
    known = {"$filter", "$orderby", "$select", "$expand", "$top", "$skip", "$count",
             "$resultFormat"}  # fmt: skip
    for key in raw:
        if key.startswith("$") and key not in known:
            raise ODataError(key, f"unknown query option (known: {', '.join(sorted(known))})")
    opts = Options(filter=raw.get("$filter"), orderby=raw.get("$orderby"),
                   select=raw.get("$select"))  # fmt: skip
    if "$top" in raw:
        opts.top = parse_int("$top", raw["$top"], low=0, high=MAX_TOP)
    if "$skip" in raw:
        opts.skip = parse_int("$skip", raw["$skip"], low=0, high=10**9)
    if "$count" in raw:
        opts.count = parse_bool("$count", raw["$count"])
    if "$expand" in raw:
        opts.expand = parse_expand(raw["$expand"], nested=nested)
    return opts
