"""The tokens of a membership rule (``remit.policies.rules``), and its error messages' shape."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from remit.errors import Invalid


@dataclass(frozen=True)
class Token:
    kind: str  # "(", ")", "[", "]", ",", "op", "word", "string", "end"
    text: str  # as written, for messages
    value: str  # an operator's name in lowercase without its hyphen, a word, a decoded string
    pos: int  # 0-based

    def describe(self) -> str:
        return "the end of the rule" if self.kind == "end" else repr(self.text)


_HYPHENS = "-\u2013"  # an en dash, as in rules pasted from Microsoft's documentation
_HINTS = {
    "=": "; comparisons are written -eq, -ne, ...",
    "!": "; comparisons are written -eq, -ne, ...",
    "<": "; comparisons are written -eq, -ne, ...",
    ">": "; comparisons are written -eq, -ne, ...",
    "&": "; write -and",
    "|": "; write -or",
    "'": "; strings are written in double quotes",
}


def invalid(message: str) -> Invalid:
    return Invalid(f"invalid membership rule: {message}", target="membershipRule")


def tokens(text: str) -> Iterator[Token]:
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()[],":
            yield Token(ch, ch, ch, i)
            i += 1
        elif ch in _HYPHENS:
            j = i + 1
            while j < n and text[j].isascii() and text[j].isalpha():
                j += 1
            if j == i + 1:
                raise invalid(f"expected an operator name after '{ch}' at position {i + 1}")
            yield Token("op", text[i:j], text[i + 1 : j].lower(), i)
            i = j
        elif ch == '"':
            value, j = _string(text, i)
            yield Token("string", text[i:j], value, i)
            i = j
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] in "_."):
                j += 1
            yield Token("word", text[i:j], text[i:j], i)
            i = j
        else:
            raise invalid(f"unexpected character {ch!r} at position {i + 1}{_HINTS.get(ch, '')}")
    yield Token("end", "", "", n)


def _string(text: str, start: int) -> tuple[str, int]:
    """The value of the string literal opening at ``start``, and where it ends."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise invalid(f"control character U+{ord(ch):04X} in a string at position {i + 1}")
        out.append(ch)
        i += 1
    raise invalid(f"unterminated string starting at position {start + 1}")
