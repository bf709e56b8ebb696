"""The IAM evaluator the policy tests rely on (tests/iam_eval.py), checked against AWS's documented rules."""

from __future__ import annotations

import pytest
from iam_eval import Request, UnsupportedPolicy, identity_decision, kms_allows

ROLE = "arn:aws:iam::123456789012:role/orders-api-lambda"
ROOT = "arn:aws:iam::123456789012:root"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
FUNCTION = "arn:aws:lambda:eu-west-1:123456789012:function:orders-api"


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def decrypt(**context: str | list[str]) -> Request:
    return Request(principal=ROLE, action="kms:Decrypt", resource=KEY, context=context)


def allow(condition: dict | None = None, **extra) -> dict:
    statement = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY, **extra}
    return statement | ({"Condition": condition} if condition else {})


@pytest.mark.parametrize("action, allowed", [
    ("kms:Decrypt", True), ("KMS:decrypt", True),  # actions are case-insensitive
    ("kms:DecryptX", False), ("kms:Encrypt", False),
])
def test_actions_match_case_insensitively_and_whole(action, allowed):
    request = Request(ROLE, action, KEY)
    assert (identity_decision([policy(allow())], request) == "Allow") is allowed


@pytest.mark.parametrize("pattern, action, matches", [
    ("kms:*", "kms:Decrypt", True), ("kms:ReEncrypt*", "kms:ReEncryptFrom", True),
    ("kms:ReEncrypt*", "kms:Decrypt", False), ("kms:?ecrypt", "kms:Decrypt", True), ("*", "s3:GetObject", True),
])
def test_action_wildcards(pattern, action, matches):
    document = policy({"Effect": "Allow", "Action": pattern, "Resource": "*"})
    assert (identity_decision([document], Request(ROLE, action, KEY)) == "Allow") is matches


def test_not_action_allows_everything_else():
    document = policy({"Effect": "Allow", "NotAction": "kms:Decrypt", "Resource": "*"})
    assert identity_decision([document], Request(ROLE, "kms:Encrypt", KEY)) == "Allow"
    assert identity_decision([document], decrypt()) == "ImplicitDeny"


def test_resource_and_not_resource():
    assert identity_decision([policy(allow(Resource=KEY.replace("1111", "9999")))], decrypt()) == "ImplicitDeny"
    assert identity_decision([policy(allow(Resource="arn:aws:kms:eu-west-1:123456789012:key/*"))], decrypt()) == "Allow"
    not_resource = {"Effect": "Allow", "Action": "kms:Decrypt", "NotResource": KEY}
    assert identity_decision([policy(not_resource)], decrypt()) == "ImplicitDeny"


def test_an_explicit_deny_wins_over_any_allow_in_any_document():
    deny = {"Effect": "Deny", "Action": "kms:*", "Resource": "*"}
    assert identity_decision([policy(allow()), policy(deny)], decrypt()) == "Deny"
    assert identity_decision([policy(deny, allow())], decrypt()) == "Deny"
    assert identity_decision([], decrypt()) == "ImplicitDeny"


def test_conditions_and_across_keys_and_or_across_values():
    condition = {"StringEquals": {"kms:EncryptionContext:LambdaFunctionName": ["orders-api", "billing"],
                                  "aws:SourceVpce": "vpce-1"}}
    document = policy(allow(condition))
    assert identity_decision([document], decrypt(**{"kms:EncryptionContext:LambdaFunctionName": "billing",
                                                    "aws:SourceVpce": "vpce-1"})) == "Allow"
    assert identity_decision([document], decrypt(**{"kms:EncryptionContext:LambdaFunctionName": "billing",
                                                    "aws:SourceVpce": "vpce-2"})) == "ImplicitDeny"
    assert identity_decision([document], decrypt(**{"kms:EncryptionContext:LambdaFunctionName": "billing"})) \
        == "ImplicitDeny"  # a key the request lacks matches no positive operator


def test_condition_keys_are_case_insensitive_and_string_values_are_not():
    document = policy(allow({"StringEquals": {"aws:SourceVpce": "vpce-1"}}))
    assert identity_decision([document], decrypt(**{"AWS:SOURCEVPCE": "vpce-1"})) == "Allow"
    assert identity_decision([document], decrypt(**{"aws:SourceVpce": "VPCE-1"})) == "ImplicitDeny"


@pytest.mark.parametrize("value, matches", [
    (FUNCTION, True), (f"{FUNCTION}:7", True), (f"{FUNCTION}:live", True),
    (f"{FUNCTION}-other", False), (f"{FUNCTION}x:1", False),
    ("arn:aws:lambda:us-east-1:123456789012:function:orders-api", False),
])
def test_arn_like_matches_the_function_its_versions_and_aliases_only(value, matches):
    document = policy(allow({"ArnLike": {"lambda:SourceFunctionArn": [FUNCTION, f"{FUNCTION}:*"]}}))
    assert (identity_decision([document], decrypt(**{"lambda:SourceFunctionArn": value})) == "Allow") is matches


def test_arn_equals_takes_wildcards_per_component_as_aws_documents():
    document = policy(allow({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::*:role/orders-*"}}))
    assert identity_decision([document], decrypt(**{"aws:PrincipalArn": ROLE})) == "Allow"
    assert identity_decision([document], decrypt(**{"aws:PrincipalArn": "not-an-arn"})) == "ImplicitDeny"


@pytest.mark.parametrize("operator, present, absent", [
    # A negated operator holds for an absent key (the Deny-unless pattern relies on it); IfExists makes any hold.
    ("StringNotEquals", False, True), ("ArnNotLike", False, True), ("StringEqualsIfExists", True, True),
    ("StringLike", True, False), ("ArnLike", True, False), ("ArnNotLikeIfExists", False, True),
])
def test_absent_keys_and_negated_and_if_exists_operators(operator, present, absent):
    document = policy(allow({operator: {"lambda:SourceFunctionArn": FUNCTION}}))
    assert (identity_decision([document], decrypt(**{"lambda:SourceFunctionArn": FUNCTION})) == "Allow") is present
    assert (identity_decision([document], decrypt()) == "Allow") is absent


def test_string_like_globs_across_colons():
    document = policy(allow({"StringLike": {"aws:userid": "AROAORDERSAPILAMBDA01:*"}}))
    assert identity_decision([document], decrypt(**{"aws:userid": "AROAORDERSAPILAMBDA01:orders-api"})) == "Allow"
    assert identity_decision([document], decrypt(**{"aws:userid": "AROANEWROLEID00000001:orders-api"})) \
        == "ImplicitDeny"


def test_null_and_set_operators():
    assert identity_decision([policy(allow({"Null": {"aws:SourceVpce": "true"}}))], decrypt()) == "Allow"
    assert identity_decision([policy(allow({"Null": {"aws:SourceVpce": "false"}}))], decrypt()) == "ImplicitDeny"
    any_value = policy(allow({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}))
    all_values = policy(allow({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}))
    assert identity_decision([any_value], decrypt(**{"aws:TagKeys": ["b", "z"]})) == "Allow"
    assert identity_decision([all_values], decrypt(**{"aws:TagKeys": ["b", "z"]})) == "ImplicitDeny"
    assert identity_decision([all_values], decrypt()) == "Allow"  # ForAllValues holds for an absent key


@pytest.mark.parametrize("document, why", [
    (policy(allow({"NumericEquals": {"x": "1"}})), "condition operator 'NumericEquals' is not modelled"),
    (policy(allow({"ForSomeValues:StringEquals": {"x": "1"}})), "unknown set operator 'ForSomeValues'"),
    (policy(allow(Resource="arn:aws:kms:*:${aws:PrincipalAccount}:key/*")), "policy variables are not modelled"),
    (policy(allow(Principalx="*")), r"statement elements not modelled: \['Principalx'\]"),
    ({"Version": "2008-10-17", "Statement": []}, "policy Version '2008-10-17'"),
])
def test_what_it_does_not_model_it_refuses(document, why):
    with pytest.raises(UnsupportedPolicy, match=why):
        identity_decision([document], decrypt())


def test_a_multi_valued_key_under_a_single_valued_operator_is_refused():
    with pytest.raises(UnsupportedPolicy, match="has several values"):
        identity_decision([policy(allow({"StringEquals": {"aws:TagKeys": "a"}}))], decrypt(**{"aws:TagKeys": ["a", "b"]}))


# --- KMS: the key policy and the principal's IAM policies together --------------------------------

DELEGATE = {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}


def test_a_key_policy_that_names_the_account_needs_an_iam_allow_too():
    assert not kms_allows(policy(DELEGATE), [], decrypt())
    assert kms_allows(policy(DELEGATE), [policy(allow())], decrypt())


def test_a_key_policy_that_names_the_principal_needs_no_iam_allow():
    named = {"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:Decrypt", "Resource": "*"}
    assert kms_allows(policy(named), [], decrypt())
    other = Request("arn:aws:iam::123456789012:role/other", "kms:Decrypt", KEY)
    assert not kms_allows(policy(named), [policy(allow())], other)


def test_another_accounts_root_delegates_nothing_here():
    foreign = {**DELEGATE, "Principal": {"AWS": "arn:aws:iam::999999999999:root"}}
    assert not kms_allows(policy(foreign), [policy(allow())], decrypt())


def test_a_deny_in_either_policy_wins_for_kms():
    deny = {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": KEY}
    named = {"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:Decrypt", "Resource": "*"}
    assert not kms_allows(policy(named), [policy(deny)], decrypt())
    assert not kms_allows(policy(DELEGATE, {**deny, "Principal": {"AWS": ROLE}}), [policy(allow())], decrypt())


def test_key_policy_conditions_bound_the_delegation():
    delegate = {**DELEGATE, "Condition": {"ArnEquals": {"aws:PrincipalArn": ROLE}}}
    assert kms_allows(policy(delegate), [policy(allow())], decrypt(**{"aws:PrincipalArn": ROLE}))
    other = "arn:aws:iam::123456789012:role/admin"
    assert not kms_allows(policy(delegate), [policy(allow())],
                          Request(other, "kms:Decrypt", KEY, {"aws:PrincipalArn": other}))
