"""The linear-time regular-expression subset: what it accepts and refuses, search and fullmatch,
case, agreement with Python's ``re`` on the same rendering, and linear cost on catastrophic
patterns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from remit import safe_regex
from remit.db import Database
from remit.safe_regex import PatternError, SafeRegex, sqlite_match

# pattern, text, search, fullmatch (case-sensitive)
MATCHES = [
    ("abc", "abc", True, True),
    ("b", "abc", True, False),
    ("^b", "abc", False, False),
    ("c$", "abc", True, False),
    ("^abc$", "abc", True, True),
    ("a|ab", "ab", True, True),  # fullmatch tries every branch, not the first that matches
    ("(?:ab)+", "ababab", True, True),
    ("(ab)+", "ababa", True, False),
    ("a{2,3}", "aaaa", True, False),
    ("a{2,}", "aaaa", True, True),
    ("a{2}", "a", False, False),
    ("x*", "", True, True),
    ("", "", True, True),
    ("", "a", True, False),
    ("a*?b", "aab", True, True),  # lazy forms find the same matches
    ("[A-Z]{3}-\\d+", "ABC-12", True, True),
    ("[A-Z]{3}-\\d+", "abc-12", False, False),  # case-sensitive by default
    ("[^a-c]+", "xyz", True, True),
    ("[a\\-z]+", "a-z", True, True),
    ("[-a]+", "-a", True, True),
    ("\\w+@\\w+\\.com", "ann@contoso.com", True, True),
    ("\\w+", "Émile", True, False),  # \w is ASCII
    ("\\d", "\u0663", False, False),  # an Arabic-Indic digit is not \d
    ("\\s", "\u00a0", False, False),  # nor a no-break space \s
    ("\\S+", "a b", True, False),
    ("\\D\\W", "a!", True, True),
    ("a.c", "a\nc", True, True),  # . matches a newline
    ("a$", "a\n", False, False),  # $ is the end of the text, not before a final newline
    ("^b", "a\nb", False, False),  # no multi-line mode
    ("\\.\\*\\(\\)", ".*()", True, True),
    ("é", "é", True, True),
]

# pattern, offset (0-based), fragment of the reason
REFUSED = [
    ("(a", 0, "missing ')'"),
    ("a)", 1, "unbalanced ')'"),
    ("a**", 2, "a quantifier can't follow another one"),
    ("*a", 0, "nothing to repeat before '*'"),
    ("$+", 0, "nothing to repeat: ^ and $ take no quantifier"),
    ("(a)\\1", 3, "\\1 isn't supported (back-references and octal escapes)"),
    ("\\bfoo", 0, "\\b isn't supported (word boundaries)"),
    ("a\\Z", 1, "\\Z isn't supported (use $)"),
    ("a\\n", 1, "\\n isn't supported (character escapes: write the character itself)"),
    ("\\p{L}", 0, "\\p isn't supported (Unicode properties)"),
    ("\\q", 0, "\\q isn't supported; escapes are \\d \\D \\w \\W \\s \\S"),
    ("(?i)a", 0, "(?...) constructs (flags, look-arounds, named groups) aren't supported"),
    ("a(?=b)", 1, "(?...) constructs"),
    ("(?P<year>\\d+)", 0, "(?...) constructs"),
    ("[[:alpha:]]", 1, "write \\[ for a bracket inside [...]"),
    ("[z-a]", 2, "the range z-a is reversed"),
    ("[]", 0, "empty character class"),
    ("[a", 0, "missing ']'"),
    ("[a-c-e]", 4, "write \\- for a literal '-'"),
    ("[\\D]", 1, "\\D can't be used inside [...]"),
    ("[a-\\d]", 2, "a range can't end with a class"),
    ("a{101}", 1, "repetition counts are limited to 100"),
    ("a{2,1}", 1, "{2,1} has its bounds reversed"),
    ("a{x}", 1, "a quantifier is written {m}, {m,} or {m,n}"),
    ("a}", 1, "write \\} for a literal '}'"),
    ("a\\", 1, "the pattern ends with a lone backslash"),
    ("((a{100}){100})", 0, "too complex"),
    ("(" * 33 + "a" + ")" * 33, 32, "groups nest more than 32 deep"),
    ("x" * 1001, 0, "longer than 1000 characters"),
]


@pytest.mark.parametrize(("pattern", "value", "searched", "full"), MATCHES)
def test_search_and_fullmatch(pattern: str, value: str, searched: bool, full: bool) -> None:
    regex = safe_regex.compile(pattern)
    assert regex.search(value) is searched
    assert regex.fullmatch(value) is full
    flags = re.ASCII | re.DOTALL  # the oracle agrees on the rendering
    assert (re.search(regex.render_python(), value, flags) is not None) is searched
    assert (re.fullmatch(regex.render_python(), value, flags) is not None) is full


@pytest.mark.parametrize(("pattern", "offset", "fragment"), REFUSED)
def test_pattern_outside_the_subset_is_explained(pattern: str, offset: int, fragment: str) -> None:
    with pytest.raises(PatternError) as caught:
        safe_regex.compile(pattern)
    assert isinstance(caught.value, ValueError)
    assert fragment in caught.value.reason
    assert caught.value.offset == offset
    assert str(caught.value).endswith(f"(at character {offset + 1} of the pattern)")


def test_max_length_is_the_callers() -> None:
    assert safe_regex.compile("x" * 1000).fullmatch("x" * 1000)
    with pytest.raises(PatternError, match="longer than 8 characters"):
        safe_regex.compile("x" * 9, max_length=8)


def test_ignore_case_folds_ascii_letters_only() -> None:
    assert safe_regex.compile("^sales$", ignore_case=True).fullmatch("SALES")
    assert safe_regex.compile("[A-C]+", ignore_case=True).fullmatch("abC")
    assert safe_regex.compile("[^a]", ignore_case=True).search("A") is False
    assert safe_regex.compile("é", ignore_case=True).search("É") is False
    assert safe_regex.compile("k", ignore_case=True).search("\u212a") is False  # Kelvin sign
    assert safe_regex.compile("sales").search("SALES") is False


def test_equality_is_by_source_and_case() -> None:
    a = safe_regex.compile("a+", ignore_case=True)
    assert a == SafeRegex("a+", safe_regex.compile("(?:a)+").node, ignore_case=True)
    assert a != safe_regex.compile("a+")
    assert len({a, safe_regex.compile("a+", ignore_case=True)}) == 1


def test_postgres_rendering() -> None:
    regex = safe_regex.compile("^a{2,3}[x-z\\]]|b+?\\.\t.$")
    assert regex.render_postgres() == "(?:^(?:a){2,3}[x-z\\]]|(?:b)+\\.\\t.$)"


def test_sqlite_function() -> None:
    assert sqlite_match("a", None) is None
    assert sqlite_match("^A$", "a") is True  # -match searches case-insensitively
    assert sqlite_match("^b", "ab") is False


def test_the_database_matches_alike(db: Database) -> None:
    """SQLite through remit_match (a search ignoring case); PostgreSQL with the rendering."""
    with db.read() as conn:
        if db.is_sqlite:
            found = conn.execute(text("SELECT remit_match('^A+$', 'aaa'), remit_match('b', 'aa')"))
            assert tuple(found.one()) == (1, 0)
            return
        query = text('SELECT CAST(:value AS text) COLLATE "C" ~ CAST(:pattern AS text)')
        for pattern, value, searched, _ in MATCHES:
            rendered = safe_regex.compile(pattern).render_postgres()
            got = conn.scalar(query, {"value": value, "pattern": rendered})
            assert got is searched, (pattern, value)


# --- linear time ------------------------------------------------------------------------------

# Each takes Python's re exponential time on its value (minutes to forever at this length).
CATASTROPHIC = [
    ("(a+)+$", "a" * 10_000 + "b"),
    ("(a|aa)*c", "a" * 10_000),
    ("^(\\w+\\s?)*$", "word " * 2_000 + "!"),
    ("(x+x+)+y", "x" * 10_000),
    ("(.*a){3}b", "a" * 10_000),
]


class Counted(Sequence[Any]):
    """A program that counts how often the matcher reads an instruction."""

    def __init__(self, program: Sequence[Any]) -> None:
        self.program = program
        self.reads = 0

    def __getitem__(self, index: Any) -> Any:
        self.reads += 1
        return self.program[index]

    def __len__(self) -> int:
        return len(self.program)


@pytest.mark.parametrize(("pattern", "value"), CATASTROPHIC)
def test_catastrophic_patterns_complete_in_linear_steps(pattern: str, value: str) -> None:
    regex = safe_regex.compile(pattern)
    # search and fullmatch, on their programs wrapped to count the steps
    for program, anchored in ((regex._search_program, False), (regex._full_program, True)):
        counted = Counted(program)
        assert safe_regex._run(counted, value, fold=False, anchored=anchored) is False
        # Every position reads each instruction at most twice: adding threads, stepping them.
        assert counted.reads <= 2 * len(program) * (len(value) + 1)


def test_steps_grow_linearly_with_the_text() -> None:
    regex = safe_regex.compile("(a|aa)*(a|aa)*c")
    reads = []
    for n in (1_000, 2_000, 4_000):
        counted = Counted(regex._full_program)
        safe_regex._run(counted, "a" * n, fold=False, anchored=True)
        reads.append(counted.reads)
    assert reads[1] <= 2.1 * reads[0]
    assert reads[2] <= 2.1 * reads[1]


# --- agreement with re on generated patterns --------------------------------------------------

TEXT = st.text(alphabet="aAbB1 _-\n.éÉK", max_size=8)
ATOMS = st.one_of(
    st.sampled_from(["a", "A", "b", "1", " ", "é", "É", "K", r"\.", r"\-", r"\\", "-"]),
    st.sampled_from([".", r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", "^", "$"]),
    st.sampled_from(["[a-c]", "[^A]", "[Z-a]", r"[_\d]", "[é-ü]", r"[^\s]", "[-a]", "[B-]"]),
)


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    quantifiers = st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "+?"])
    return st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map("|".join),
        st.tuples(inner, quantifiers).map(lambda p: f"({p[0]}){p[1]}"),
        st.tuples(inner, quantifiers).map(lambda p: f"(?:{p[0]}){p[1]}"),
    )


PATTERNS = st.recursive(ATOMS, _compound, max_leaves=6)


@given(PATTERNS, TEXT, st.booleans())
@settings(max_examples=500, deadline=None)
def test_matcher_agrees_with_python_re(pattern: str, value: str, ignore_case: bool) -> None:
    try:
        regex = safe_regex.compile(pattern, ignore_case=ignore_case)
    except PatternError:  # a generated pattern the subset refuses, such as (^)*
        assume(False)
        raise
    flags = re.ASCII | re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    assert regex.search(value) is (re.search(regex.render_python(), value, flags) is not None)
    assert regex.fullmatch(value) is (re.fullmatch(regex.render_python(), value, flags) is not None)
