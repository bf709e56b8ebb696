"""A small IAM policy evaluator, for the tests that ask "who can Decrypt, and under which context?" of the
policies the module renders.

It covers what these policies use, and refuses the rest loudly (UnsupportedPolicy) rather than guess:
Allow and Deny (an explicit Deny wins), Action/NotAction and Resource/NotResource with * and ? wildcards,
Principal {"AWS": ...}, and the condition operators String(Not)Equals, String(Not)Like, Arn(Not)Equals,
Arn(Not)Like, Bool and Null, each with an IfExists form, and ForAnyValue:/ForAllValues: over multi-valued keys.

KMS's rule for a key policy (https://docs.aws.amazon.com/kms/latest/developerguide/determining-access.html):
a request is allowed when no policy denies it, and either the key policy allows the principal by name, or the
key policy allows the principal's account (its root) and the principal's IAM policies allow it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ContextValue = str | Sequence[str]


class UnsupportedPolicy(ValueError):
    """The document uses something this evaluator does not model: it refuses rather than guess."""


@dataclass(frozen=True)
class Request:
    """One API call as IAM sees it. ``principal`` is the principal's ARN (a role session: the role's ARN);
    ``context`` maps condition keys (case-insensitive) to a value or a list of values."""
    principal: str
    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    def value(self, key: str) -> list[str] | None:
        for name, value in self.context.items():
            if name.lower() == key.lower():
                return [value] if isinstance(value, str) else list(value)
        return None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcards: * any run of characters (':' and '/' included), ? one character; nothing else."""
    if "${" in pattern:
        raise UnsupportedPolicy(f"policy variables are not modelled: {pattern!r}")
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike and ArnEquals alike: each of the six colon-separated parts matched on its own."""
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(_glob(p, v) for p, v in zip(pattern_parts, value_parts))


_MATCHERS = {
    "StringEquals": lambda pattern, value: pattern == value,
    "StringEqualsIgnoreCase": lambda pattern, value: pattern.lower() == value.lower(),
    "StringLike": _glob,
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
    "Bool": lambda pattern, value: pattern.lower() == value.lower(),
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
            "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def _condition_holds(operator: str, key: str, patterns: list[str], request: Request) -> bool:
    qualifier = None
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
        if qualifier not in ("ForAnyValue", "ForAllValues"):
            raise UnsupportedPolicy(f"unknown set operator {qualifier!r}")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    values = request.value(key)
    if base == "Null":
        if qualifier or if_exists:
            raise UnsupportedPolicy(f"{operator} takes no qualifier")
        return any((values is None) == (p.lower() == "true") for p in patterns)
    negated = base in _NEGATED
    matcher = _MATCHERS.get(_NEGATED.get(base, base))
    if matcher is None:
        raise UnsupportedPolicy(f"condition operator {operator!r} is not modelled")
    if values is None:  # the key is absent from the request
        if qualifier == "ForAllValues":
            return True
        return if_exists or negated
    if qualifier is None and len(values) != 1:
        raise UnsupportedPolicy(f"{key} has several values: a single-valued operator ({operator}) does not apply")

    def matches(value: str) -> bool:
        return any(matcher(str(pattern), value) for pattern in patterns)

    if qualifier == "ForAllValues":
        return all(not matches(v) if negated else matches(v) for v in values)
    # A negated operator holds when the value matches none of the patterns.
    hits = [not matches(v) if negated else matches(v) for v in values]
    return any(hits)


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], request: Request) -> bool:
    # Operators and keys are ANDed; the values of one key are ORed.
    return all(_condition_holds(operator, key, [str(p) for p in _as_list(patterns)], request)
               for operator, keys in conditions.items() for key, patterns in keys.items())


def _principal_names(statement: Mapping[str, Any]) -> list[str]:
    if "NotPrincipal" in statement:
        raise UnsupportedPolicy("NotPrincipal is not modelled")
    principal = statement["Principal"]
    if principal == "*":
        return ["*"]
    if not isinstance(principal, Mapping) or set(principal) - {"AWS", "Service"}:
        raise UnsupportedPolicy(f"principal {principal!r} is not modelled")
    return [str(p) for p in _as_list(principal.get("AWS", []))]


def _account_root(arn: str) -> str:
    parts = arn.split(":")
    return f"arn:{parts[1]}:iam::{parts[4]}:root"


def _statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    unknown = set(statement) - {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource",
                                "Condition", "Principal", "NotPrincipal"}
    if unknown:
        raise UnsupportedPolicy(f"statement elements not modelled: {sorted(unknown)}")
    if statement["Effect"] not in ("Allow", "Deny"):
        raise UnsupportedPolicy(f"Effect {statement['Effect']!r}")
    if "Action" in statement:
        if not any(_glob(a, request.action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False
    elif any(_glob(a, request.action, ignore_case=True) for a in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(_glob(r, request.resource) for r in _as_list(statement["Resource"])):
            return False
    elif any(_glob(r, request.resource) for r in _as_list(statement["NotResource"])):
        return False
    return _conditions_hold(statement.get("Condition", {}), request)


def statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if document.get("Version") != "2012-10-17":
        raise UnsupportedPolicy(f"policy Version {document.get('Version')!r}")
    return _as_list(document["Statement"])


def identity_decision(documents: Iterable[Mapping[str, Any]], request: Request) -> str:
    """"Deny" (explicit), "Allow" or "ImplicitDeny" for a principal's own (identity) policies."""
    effects = {s["Effect"] for document in documents for s in statements(document) if _statement_applies(s, request)}
    return "Deny" if "Deny" in effects else "Allow" if "Allow" in effects else "ImplicitDeny"


def kms_allows(key_policy: Mapping[str, Any], identity_policies: Iterable[Mapping[str, Any]],
               request: Request) -> bool:
    """Whether KMS lets ``request`` through, given the key policy and the principal's IAM policies
    (same account; no grants)."""
    identity = identity_decision(list(identity_policies), request)
    by_name = via_account = False
    for statement in statements(key_policy):
        if not _statement_applies(statement, request):
            continue
        names = _principal_names(statement)
        named = "*" in names or request.principal in names
        through_account = _account_root(request.principal) in names
        if not (named or through_account):
            continue
        if statement["Effect"] == "Deny":
            return False
        by_name |= named
        via_account |= through_account
    if identity == "Deny":
        return False
    return by_name or (via_account and identity == "Allow")


__all__ = ["Request", "UnsupportedPolicy", "identity_decision", "kms_allows", "statements"]
