"""The recursive-descent parser of membership rules (the grammar is in ``remit.policies.rules``).

Every refusal is an ``Invalid`` whose message says what was expected, where, and often how to
write it instead."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

from remit import safe_regex
from remit.errors import Invalid
from remit.policies.rules_lexer import Token, invalid, tokens
from remit.policies.rules_tree import (
    OPERATOR_LIST,
    OPERATORS,
    OPERATORS_OF_KIND,
    PROPERTIES,
    PROPERTY_LIST,
    UNSUPPORTED,
    And,
    Comparison,
    Expression,
    Kind,
    Not,
    Op,
    Or,
    Property,
    Value,
)

MAX_DEPTH = 32  # nested parentheses and -not
MAX_PATTERN_LENGTH = 256


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = list(tokens(text))
        self.i = 0
        self.depth = 0

    @property
    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def is_op(self, name: str) -> bool:
        return self.peek.kind == "op" and self.peek.value == name

    def expected(self, what: str, token: Token | None = None, hint: str = "") -> Invalid:
        token = token or self.peek
        return invalid(
            f"expected {what} at position {token.pos + 1}, found {token.describe()}{hint}"
        )

    def nest(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise invalid(f"the rule nests more than {MAX_DEPTH} deep at position {token.pos + 1}")

    def rule(self) -> Expression:
        if self.peek.kind == "end":
            raise invalid("the rule is empty")
        expression = self.disjunction()
        if self.peek.kind != "end":
            hint = ""
            if self.peek.kind == "word" and self.peek.value.lower() in ("and", "or"):
                hint = f"; write -{self.peek.value.lower()}"
            elif self.peek.kind == ")":
                hint = "; this ')' closes nothing"
            raise self.expected("-and, -or or the end of the rule", hint=hint)
        return expression

    def disjunction(self) -> Expression:
        return self.chain("or", self.conjunction, Or)

    def conjunction(self) -> Expression:
        return self.chain("and", self.negation, And)

    def chain(
        self, op: str, operand: Callable[[], Expression], kind: type[And] | type[Or]
    ) -> Expression:
        """Operands joined by ``-op`` (one alone is itself)."""
        operands = [operand()]
        while self.is_op(op):
            self.take()
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return kind(tuple(_flatten(operands, kind)))

    def negation(self) -> Expression:
        token = self.peek
        if self.is_op("not"):
            self.take()
            self.nest(token)
            operand = self.negation()
            self.depth -= 1
            return Not(operand)
        if token.kind == "(":
            self.take()
            self.nest(token)
            inner = self.disjunction()
            if self.peek.kind != ")":
                raise self.expected(
                    f"-and, -or or ')' to close the '(' at position {token.pos + 1}"
                )
            self.take()
            self.depth -= 1
            return inner
        if token.kind == "word":
            return self.comparison()
        hint = ""
        if token.kind == "op" and token.value in ("and", "or"):
            hint = f"; {token.text} needs a condition on each side"
        raise self.expected(
            'a condition such as user.department -eq "Sales", "(" or -not', hint=hint
        )

    def comparison(self) -> Comparison:
        token = self.take()
        head, dot, name = token.value.partition(".")
        if head.lower() != "user" or not dot:
            hint = ""
            if token.value.lower() in ("and", "or", "not"):
                hint = f"; write -{token.value.lower()}"
            elif head.lower() == "device":
                hint = "; rules select users"
            raise self.expected("a user property such as user.department", token, hint)
        prop = PROPERTIES.get(name.lower())
        if prop is None:
            raise invalid(
                f"unknown property user.{name} at position {token.pos + 1}; "
                f"remit supports {PROPERTY_LIST}"
            )
        op = self.operator(prop)
        if op in (Op.IN, Op.NOT_IN):
            value: Value = self.values(prop, op)
        elif op in (Op.MATCH, Op.NOT_MATCH):
            value = self.pattern(op)
        else:
            value = self.scalar(prop, op)
        return Comparison(prop, op, value)

    def operator(self, prop: Property) -> Op:
        token = self.take()
        bare = token.kind == "word" and token.value.lower() in OPERATORS  # Entra allows "eq"
        if token.kind != "op" and not bare:
            raise self.expected(f"an operator such as -eq after user.{prop.name}", token)
        name = token.value.lower()
        op = OPERATORS.get(name)
        if op is None:
            reason = UNSUPPORTED.get(name)
            where = f"at position {token.pos + 1}"
            if reason:
                raise invalid(f"{token.text} {where} isn't supported: {reason}")
            raise invalid(f"unknown operator {token.text} {where}; operators are {OPERATOR_LIST}")
        if op not in OPERATORS_OF_KIND[prop.kind]:
            allowed = ", ".join(o.spelling for o in Op if o in OPERATORS_OF_KIND[prop.kind])
            raise invalid(
                f"{op.spelling} at position {token.pos + 1} doesn't apply to user.{prop.name}, "
                f"which is {prop.kind.value}; use {allowed}"
            )
        return op

    def scalar(self, prop: Property, op: Op) -> str | bool | None:
        token = self.take()
        word = token.value.lower() if token.kind == "word" else None
        where = f"at position {token.pos + 1}"
        if word == "null":
            if op not in (Op.EQ, Op.NE):
                raise invalid(f"null {where} can only be compared with -eq or -ne")
            return None
        if prop.kind is Kind.BOOLEAN:
            if word in ("true", "false"):
                return word == "true"
            raise self.expected(
                f"true or false (without quotes) after user.{prop.name} {op.spelling}", token
            )
        if token.kind != "string":
            raise self.expected(
                f"a string in double quotes after user.{prop.name} {op.spelling}", token
            )
        return self.string_value(prop, token)

    def string_value(self, prop: Property, token: Token) -> str:
        if prop.kind is not Kind.ID:
            return token.value
        try:
            return str(uuid.UUID(token.value))
        except ValueError:
            raise invalid(
                f"user.manager takes a user id (a GUID), not {token.text} "
                f"at position {token.pos + 1}"
            ) from None

    def values(self, prop: Property, op: Op) -> tuple[str, ...]:
        opening = self.take()
        if opening.kind != "[":
            raise self.expected(f'a list such as ["a", "b"] after {op.spelling}', opening)
        if self.peek.kind == "]":
            raise invalid(f"the list at position {opening.pos + 1} is empty")
        items: list[str] = []
        while True:
            token = self.take()
            if token.kind != "string":
                raise self.expected("a string in double quotes in the list", token)
            items.append(self.string_value(prop, token))
            separator = self.take()
            if separator.kind == "]":
                return tuple(items)
            if separator.kind != ",":
                raise self.expected(
                    f"',' or ']' to close the list at position {opening.pos + 1}", separator
                )

    def pattern(self, op: Op) -> safe_regex.SafeRegex:
        token = self.take()
        if token.kind != "string":
            raise self.expected(f"a regular expression in double quotes after {op.spelling}", token)
        try:
            return safe_regex.compile(token.value, ignore_case=True, max_length=MAX_PATTERN_LENGTH)
        except safe_regex.PatternError as e:
            raise invalid(f"invalid regular expression at position {token.pos + 1}: {e}") from None


def _flatten(operands: list[Expression], kind: type[And] | type[Or]) -> Iterator[Expression]:
    """Splice nested operands of the same kind: (a -and b) -and c is a -and b -and c."""
    for operand in operands:
        if isinstance(operand, kind):
            yield from operand.operands
        else:
            yield operand
