"""Regular expressions that people type into policies, matched in linear time.

Python's ``re`` backtracks: ``(a+)+$`` against thirty ``a`` and a ``b``, or three ``.*`` against
a 255-character value, take seconds to hours. Patterns written by policy authors (``-match`` in
membership rules, the ``regexPattern`` of a request question) therefore never reach ``re``:
``compile`` parses them into a small portable subset, and ``SafeRegex`` runs them on a Pike VM
(a Thompson NFA simulation without captures), O(len(text) * len(program)) whatever the pattern.

The subset::

    literals, ".", "^", "$", "[...]" and "[^...]" with ranges, \\d \\D \\w \\W \\s \\S,
    "\\" before punctuation, groups "(...)" and "(?:...)", "|", "* + ? {m} {m,} {m,n}"
    (lazy forms such as "*?" are accepted: they find the same matches)

Nothing else: no back-references, look-arounds, flags, named groups, ``\\b``, ``\\n``-style or
Unicode escapes. Being a plain regular language, a pattern means the same on every engine it is
rendered for. Its semantics:

* ``.`` matches any character, newlines included; ``^`` matches only at the start of the text
  and ``$`` only at its end (no multi-line mode, no "before a final newline").
* ``\\d``, ``\\w`` and ``\\s`` have their ASCII meaning (``[0-9]``, ``[0-9A-Z_a-z]``,
  ``[\\t-\\r ]``).
* With ``ignore_case``, only the ASCII letters A-Z and a-z match each other's case; every other
  character matches exactly (as SQLite's ``lower()`` and PostgreSQL under ``COLLATE "C"``).

``render_postgres()`` spells the pattern for PostgreSQL's ``~`` (``~*`` with ``ignore_case``)
under ``COLLATE "C"``; ``sqlite_match`` is the ``remit_match(pattern, value)`` function that
``remit.db`` registers on SQLite connections (a case-insensitive search, for ``-match``).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_PROGRAM",
    "MAX_REPEAT",
    "PatternError",
    "SafeRegex",
    "compile",
    "sqlite_match",
]

MAX_LENGTH = 1000  # characters of a pattern, unless the caller asks for less
MAX_DEPTH = 32  # nested groups
MAX_REPEAT = 100  # {m,n} bounds; PostgreSQL refuses more than 255
MAX_PROGRAM = 5000  # matcher instructions once {m,n} is unrolled: bounds the cost per character


class PatternError(ValueError):
    """A pattern outside the subset. ``str()`` is ``reason`` and where in the pattern."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"{reason} (at character {offset + 1} of the pattern)")
        self.offset = offset  # 0-based
        self.reason = reason


@dataclass(frozen=True)
class SafeRegex:
    """A compiled pattern. Equal patterns (same source, same ``ignore_case``) compare equal."""

    source: str
    node: _Node = field(compare=False, repr=False)
    ignore_case: bool = False

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in ``text``."""
        return _run(self._search_program, text, fold=self.ignore_case, anchored=False)

    def fullmatch(self, text: str) -> bool:
        """Whether the pattern matches the whole of ``text``."""
        return _run(self._full_program, text, fold=self.ignore_case, anchored=True)

    def render_postgres(self) -> str:
        """The pattern for PostgreSQL's ``~`` (``~*`` if ``ignore_case``) under ``COLLATE "C"``."""
        return _render(self.node)

    def render_python(self) -> str:
        """The pattern for Python's ``re`` with the flags ASCII and DOTALL (and IGNORECASE if
        ``ignore_case``): an oracle for tests, never for matching user input."""
        return _render(self.node, python=True)

    @cached_property
    def _search_program(self) -> list[_Ins]:
        return _program(self.node)

    @cached_property
    def _full_program(self) -> list[_Ins]:
        return _program(_Seq((self.node, _Anchor(end=True))))


@lru_cache(maxsize=512)
def compile(  # shadows the builtin, as re.compile does
    pattern: str, *, ignore_case: bool = False, max_length: int = MAX_LENGTH
) -> SafeRegex:
    """``pattern`` compiled; ``PatternError`` naming what is outside the subset, and where."""
    if len(pattern) > max_length:
        raise PatternError(0, f"the pattern is longer than {max_length} characters")
    node = _Parser(pattern).parse()
    if _size(node) > MAX_PROGRAM:
        raise PatternError(0, "the pattern is too complex (its repetitions multiply too far)")
    return SafeRegex(pattern, node, ignore_case)


def sqlite_match(pattern: str, value: str | None) -> bool | None:
    """SQLite's ``remit_match(pattern, value)``: a case-insensitive search, NULL on NULL."""
    if value is None:
        return None
    return compile(pattern, ignore_case=True).search(value)


# --- the pattern tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chars:
    """One character out of ``ranges`` (inclusive), or out of everything else if ``negated``."""

    ranges: tuple[tuple[str, str], ...]
    negated: bool = False

    def matches(self, ch: str, fold: bool) -> bool:
        hit = any(lo <= ch <= hi for lo, hi in self.ranges)
        if not hit and fold and ch in _ASCII_LETTERS:
            other = ch.swapcase()
            hit = any(lo <= other <= hi for lo, hi in self.ranges)
        return hit != self.negated


@dataclass(frozen=True)
class _Anchor:
    end: bool  # "$" if true, "^" if not


@dataclass(frozen=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Alt:
    branches: tuple[_Node, ...]


@dataclass(frozen=True)
class _Repeat:
    node: _Node
    min: int
    max: int | None


_Node = _Chars | _Anchor | _Seq | _Alt | _Repeat

_ASCII_LETTERS = frozenset(string.ascii_letters)
_DIGIT = (("0", "9"),)
_WORD = (("0", "9"), ("A", "Z"), ("_", "_"), ("a", "z"))
_SPACE = (("\t", "\r"), (" ", " "))
_CLASS_ESCAPES = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
# Escapes of other engines, named in the message that refuses them.
_UNSUPPORTED_ESCAPES = {
    "0": "back-references and octal escapes",
    "b": "word boundaries",
    "B": "word boundaries",
    "A": "use ^",
    "Z": "use $",
    "z": "use $",
    **dict.fromkeys("ntrfvxuUN", "character escapes: write the character itself"),
    **dict.fromkeys("pP", "Unicode properties"),
}
_ENTRY_ESCAPES = {"\t": r"\t", "\n": r"\n", "\x0b": r"\v", "\x0c": r"\f", "\r": r"\r"}


# --- the pattern parser -----------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str) -> None:
        self.s = source
        self.i = 0
        self.depth = 0

    def error(self, reason: str, offset: int | None = None) -> PatternError:
        return PatternError(self.i if offset is None else offset, reason)

    def peek(self) -> str | None:
        return self.s[self.i] if self.i < len(self.s) else None

    def parse(self) -> _Node:
        node = self.alternation()
        if self.i < len(self.s):  # only a ")" stops an alternation early
            raise self.error("unbalanced ')'")
        return node

    def alternation(self) -> _Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else _Alt(tuple(branches))

    def sequence(self) -> _Node:
        items: list[_Node] = []
        while (ch := self.peek()) is not None and ch not in "|)":
            items.append(self.quantified())
        return items[0] if len(items) == 1 else _Seq(tuple(items))

    def quantified(self) -> _Node:
        start = self.i
        node = self.atom()
        bounds = self.quantifier()
        if bounds is None:
            return node
        if isinstance(node, _Anchor):
            raise self.error("nothing to repeat: ^ and $ take no quantifier", start)
        if self.peek() == "?":  # lazy: the same matches exist
            self.i += 1
        if (ch := self.peek()) is not None and ch in "*+?{":
            raise self.error(f"a quantifier can't follow another one; group it first: (...){ch}")
        return _Repeat(node, *bounds)

    def quantifier(self) -> tuple[int, int | None] | None:
        ch = self.peek()
        simple = {"*": (0, None), "+": (1, None), "?": (0, 1)}
        if ch in simple:
            self.i += 1
            return simple[ch]
        if ch != "{":
            return None
        start = self.i
        close = self.s.find("}", start)
        low, comma, high = self.s[start + 1 : max(close, start)].partition(",")
        if close < 0 or not _digits(low) or not (_digits(high) or not high):
            raise self.error("a quantifier is written {m}, {m,} or {m,n}; write \\{ for a brace")
        least = int(low)
        most = int(high) if high else (None if comma else least)
        if least > MAX_REPEAT or (most is not None and most > MAX_REPEAT):
            raise self.error(f"repetition counts are limited to {MAX_REPEAT}")
        if most is not None and most < least:
            raise self.error(f"{{{low},{high}}} has its bounds reversed")
        self.i = close + 1
        return least, most

    def atom(self) -> _Node:
        ch = self.s[self.i]
        start = self.i
        self.i += 1
        if ch == "(":
            return self.group(start)
        if ch == "[":
            return self.char_class(start)
        if ch == ".":
            return _Chars((), negated=True)
        if ch in "^$":
            return _Anchor(end=ch == "$")
        if ch == "\\":
            return self.escape(start, in_class=False)
        if ch in "*+?{":
            raise self.error(
                f"nothing to repeat before '{ch}'; write \\{ch} for the character", start
            )
        if ch in "]}":
            raise self.error(f"write \\{ch} for a literal '{ch}'", start)
        return _Chars(((ch, ch),))

    def group(self, start: int) -> _Node:
        if self.s.startswith("(?", start):
            if not self.s.startswith("(?:", start):
                raise self.error(
                    "(?...) constructs (flags, look-arounds, named groups) aren't supported; "
                    "(?:...) is",
                    start,
                )
            self.i += 2
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"groups nest more than {MAX_DEPTH} deep", start)
        node = self.alternation()
        if self.peek() != ")":
            raise self.error("missing ')'", start)
        self.i += 1
        self.depth -= 1
        return node

    def escape(self, start: int, *, in_class: bool) -> _Chars:
        ch = self.peek()
        if ch is None:
            raise self.error("the pattern ends with a lone backslash", start)
        self.i += 1
        if ch in _CLASS_ESCAPES:
            return _Chars(_CLASS_ESCAPES[ch])
        if ch.lower() in _CLASS_ESCAPES:
            if in_class:
                raise self.error(
                    f"\\{ch} can't be used inside [...]; negate the class instead", start
                )
            return _Chars(_CLASS_ESCAPES[ch.lower()], negated=True)
        if ch in string.punctuation:
            return _Chars(((ch, ch),))
        what = _UNSUPPORTED_ESCAPES.get("0" if ch.isdigit() else ch)
        raise self.error(
            f"\\{ch} isn't supported{f' ({what})' if what else ''}; escapes are "
            "\\d \\D \\w \\W \\s \\S and \\ before punctuation",
            start,
        )

    def char_class(self, start: int) -> _Chars:
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        first = self.i
        ranges: list[tuple[str, str]] = []
        while True:
            ch = self.peek()
            if ch is None:
                raise self.error("missing ']'", start)
            if ch == "]":
                if self.i == first:
                    raise self.error("empty character class; write \\] for a bracket", start)
                self.i += 1
                return _Chars(tuple(ranges), negated)
            low = self.class_char(first)
            if isinstance(low, _Chars) or self.peek() != "-" or self.s.startswith("-]", self.i):
                ranges.extend(low.ranges if isinstance(low, _Chars) else ((low, low),))
                continue
            dash = self.i
            self.i += 1
            high = self.class_char(first)
            if isinstance(high, _Chars):
                raise self.error("a range can't end with a class such as \\d", dash)
            if low > high:
                raise self.error(f"the range {low}-{high} is reversed", dash)
            ranges.append((low, high))

    def class_char(self, first: int) -> str | _Chars:
        """One item of a class whose items start at ``first``: a character, or the characters
        of an escape such as \\d."""
        start = self.i
        ch = self.s[start]
        self.i += 1
        if ch == "\\":
            escaped = self.escape(start, in_class=True)
            return escaped if self.s[start + 1] in _CLASS_ESCAPES else escaped.ranges[0][0]
        if ch == "[":
            raise self.error("write \\[ for a bracket inside [...]", start)
        if ch == "-" and start != first and self.peek() != "]":
            raise self.error("write \\- for a literal '-' inside [...]", start)
        return ch


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


# --- the matcher ------------------------------------------------------------------------------


def _size(node: _Node) -> int:
    """How many matcher instructions ``node`` compiles to."""
    match node:
        case _Chars() | _Anchor():
            return 1
        case _Seq(items):
            return sum(_size(n) for n in items)
        case _Alt(branches):
            return sum(_size(n) for n in branches) + 2 * (len(branches) - 1)
        case _Repeat(inner, least, most):
            size = _size(inner)
            extra = size + 2 if most is None else (most - least) * (size + 1)
            return least * size + extra
    raise AssertionError(node)  # pragma: no cover


# Matcher instructions: a character test, a fork, a jump, an anchor, or success.
@dataclass
class _Ins:
    op: str  # "char", "split", "jmp", "bol", "eol", "match"
    chars: _Chars | None = None
    x: int = 0
    y: int = 0


def _program(node: _Node) -> list[_Ins]:
    prog: list[_Ins] = []
    _emit(node, prog)
    prog.append(_Ins("match"))
    return prog


def _emit(node: _Node, prog: list[_Ins]) -> None:
    match node:
        case _Chars():
            prog.append(_Ins("char", node))
        case _Anchor(end):
            prog.append(_Ins("eol" if end else "bol"))
        case _Seq(items):
            for item in items:
                _emit(item, prog)
        case _Alt(branches):
            jumps: list[_Ins] = []
            for branch in branches[:-1]:
                split = _Ins("split", x=len(prog) + 1)
                prog.append(split)
                _emit(branch, prog)
                jumps.append(_Ins("jmp"))
                prog.append(jumps[-1])
                split.y = len(prog)
            _emit(branches[-1], prog)
            for jump in jumps:
                jump.x = len(prog)
        case _Repeat(inner, least, most):
            for _ in range(least):
                _emit(inner, prog)
            if most is None:
                loop = _Ins("split", x=len(prog) + 1)
                prog.append(loop)
                top = len(prog) - 1
                _emit(inner, prog)
                prog.append(_Ins("jmp", x=top))
                loop.y = len(prog)
                return
            skips: list[_Ins] = []
            for _ in range(most - least):
                skips.append(_Ins("split", x=len(prog) + 1))
                prog.append(skips[-1])
                _emit(inner, prog)
            for skip in skips:
                skip.y = len(prog)


def _run(prog: Sequence[_Ins], text: str, *, fold: bool, anchored: bool) -> bool:
    """Whether ``prog`` matches in ``text``: from its start only if ``anchored``, else from any
    position. Each position reads every instruction at most twice (the ``seen`` set), so the
    cost is O(len(text) * len(prog)) whatever the pattern."""
    end = len(text)

    def add(threads: list[int], seen: set[int], pc: int, at: int) -> bool:
        stack = [pc]
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            ins = prog[pc]
            if ins.op == "char":
                threads.append(pc)
            elif ins.op == "match":
                return True
            elif ins.op == "jmp":
                stack.append(ins.x)
            elif ins.op == "split":
                stack += (ins.y, ins.x)
            elif (ins.op == "bol" and at == 0) or (ins.op == "eol" and at == end):
                stack.append(pc + 1)
        return False

    threads: list[int] = []
    if add(threads, set(), 0, 0):
        return True
    for at, ch in enumerate(text, start=1):
        if anchored and not threads:
            return False
        following: list[int] = []
        seen: set[int] = set()
        for pc in threads:
            chars = prog[pc].chars
            if chars is not None and chars.matches(ch, fold) and add(following, seen, pc + 1, at):
                return True
        if not anchored and add(following, seen, 0, at):  # a match may start anywhere
            return True
        threads = following
    return False


# --- rendering --------------------------------------------------------------------------------


def _render(node: _Node, *, python: bool = False) -> str:
    """The pattern for PostgreSQL (or, for tests, for Python's ``re`` with the flags ASCII and
    DOTALL): every construct spelt so that both read it alike."""
    match node:
        case _Chars():
            return _render_chars(node)
        case _Anchor(end):
            return ("\\Z" if python else "$") if end else "^"
        case _Seq(items):
            return "".join(_render(n, python=python) for n in items)
        case _Alt(branches):
            return "(?:" + "|".join(_render(n, python=python) for n in branches) + ")"
        case _Repeat(inner, least, most):
            return f"(?:{_render(inner, python=python)}){_quantifier(least, most)}"
    raise AssertionError(node)  # pragma: no cover


def _render_chars(chars: _Chars) -> str:
    if chars.negated and not chars.ranges:
        return "."
    if not chars.negated and len(chars.ranges) == 1 and chars.ranges[0][0] == chars.ranges[0][1]:
        return _render_char(chars.ranges[0][0])
    items = "".join(
        _render_char(lo) if lo == hi else f"{_render_char(lo)}-{_render_char(hi)}"
        for lo, hi in chars.ranges
    )
    return f"[{'^' if chars.negated else ''}{items}]"


def _quantifier(least: int, most: int | None) -> str:
    if most is None:
        return {0: "*", 1: "+"}.get(least, f"{{{least},}}")
    return f"{{{least},{most}}}"


def _render_char(ch: str) -> str:
    if ch in _ENTRY_ESCAPES:
        return _ENTRY_ESCAPES[ch]
    return "\\" + ch if ch in string.punctuation else ch
