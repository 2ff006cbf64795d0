"""Membership rules of automatic assignment policies (spec §5.9), in Entra's dynamic-group syntax.

``parse`` turns text such as ``user.jobTitle -startsWith "Eng" -and -not (user.userType -eq
"Guest")`` into a ``Rule``, which evaluates one user in Python (``matches``), selects matching
users in SQL (``to_sql``) and prints itself canonically (``str``). The two evaluations must
agree exactly, because the auto-assignment job selects users in SQL and single users are checked
in Python; ``tests/unit/test_rules.py`` checks that they do on both engines.

Grammar (keywords, operators and property names are case-insensitive; precedence from high to
low is comparison, ``-not``, ``-and``, ``-or``)::

    rule       := or
    or         := and ("-or" and)*
    and        := not ("-and" not)*
    not        := "-not" not | "(" or ")" | comparison
    comparison := "user." property operator value
    value      := string | "true" | "false" | "null" | "[" string ("," string)* "]"

Strings are in double quotes; ``\\"`` is a quote and ``\\\\`` a backslash, and any other
backslash is kept as it is, so a regular expression reads ``"^\\d+$"``. As in Entra, comparison
operators may also be written without their hyphen, and an en dash (as pasted from Microsoft's
documentation) counts as a hyphen; ``str(rule)`` writes the canonical form.

Semantics, the same in Python, SQLite and PostgreSQL:

* **Null.** A missing (null) attribute satisfies no positive operator (``-eq "x"``,
  ``-startsWith``, ``-endsWith``, ``-contains``, ``-match``, ``-in``) and every negative one:
  each ``-notX`` is exactly ``-not (... -X ...)``, so ``user.department -ne "Sales"`` selects
  users without a department too. ``-eq null`` holds only for a missing value and ``-ne null``
  only for a present one; ``""`` is a value, not null. Every comparison therefore compiles to
  an SQL expression that is never NULL, and ``-not``, ``-and``, ``-or`` are plain two-valued
  logic on both sides.
* **Case.** String comparisons and regular expressions ignore the case of the ASCII letters
  A-Z only; every other character compares exactly. That is what SQLite's ``lower()`` does and
  what PostgreSQL's ``lower(x COLLATE "C")`` and ``~*`` under ``COLLATE "C"`` do, whatever the
  database's locale. ``user.manager`` is an object id, compared exactly after the rule's GUID
  is normalized to lowercase (ids are stored in lowercase).
* **Regular expressions** (``-match``, ``-notMatch``) use the portable subset of
  ``remit.safe_regex`` (literals, ``.``, ``^``, ``$``, ``[...]`` classes with ranges,
  ``\\d \\D \\w \\W \\s \\S`` in their ASCII meaning, escaped punctuation, groups, ``|``,
  ``* + ? {m,n}``), searched case-insensitively; ``.`` matches any character and ``$`` only the
  end of the value. Python never uses ``re`` (a backtracking engine: three ``.*`` in a
  255-character value take seconds) but that module's linear-time matcher, which SQLite calls as
  the ``remit_match`` function (registered in ``remit.db``); PostgreSQL runs the same pattern,
  rendered for its own engine, with ``~*``.

The implementation is split by concept: ``rules_lexer`` (tokens), ``rules_parser`` (the grammar
above and its messages), ``rules_tree`` (properties, operators, the tree, ``Rule``) and
``rules_sql`` (the SQL constructs that spell a comparison for each dialect).
"""

from __future__ import annotations

from remit.policies.rules_lexer import invalid
from remit.policies.rules_parser import MAX_DEPTH, MAX_PATTERN_LENGTH, Parser
from remit.policies.rules_tree import Rule, UserAttributes

__all__ = [
    "MAX_DEPTH",
    "MAX_PATTERN_LENGTH",
    "MAX_RULE_LENGTH",
    "Rule",
    "UserAttributes",
    "parse",
]

MAX_RULE_LENGTH = 3072  # Entra's limit on the body of a membership rule


def parse(text: str) -> Rule:
    """The rule ``text`` says; ``Invalid`` (target ``membershipRule``) if it says nothing valid."""
    if len(text) > MAX_RULE_LENGTH:
        raise invalid(f"the rule is {len(text)} characters long; the limit is {MAX_RULE_LENGTH:,}")
    return Rule(Parser(text).rule())
