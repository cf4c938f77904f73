"""template.yaml against the workspace: every function in functions/ is deployed, built
from its own binary, serves exactly its routes of the route table, and is granted only
named actions on named resources."""

import pathlib

import pytest
import yaml

from route_table import route_table

ROOT = pathlib.Path(__file__).resolve().parents[2]


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !GetAtt, ...) as plain values."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template():
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)


def rust_functions(template):
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda"
    }


def test_every_function_crate_is_deployed_once(template):
    crates = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists())
    binaries = sorted(r["Metadata"]["BuildProperties"]["Binary"] for r in rust_functions(template).values())
    assert binaries == crates


def test_functions_run_on_al2023_arm64_from_the_workspace(template):
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "provided.al2023"
    assert globals_["Architectures"] == ["arm64"]
    assert globals_["Handler"] == "bootstrap"
    for name, resource in rust_functions(template).items():
        assert resource["Properties"]["CodeUri"] == ".", name


def test_policies_name_their_actions_and_resources(template):
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for policy in resource["Properties"].get("Policies", []):
            assert isinstance(policy, dict) and "Statement" in policy, f"{name}: only inline statements"
            for statement in policy["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                assert all("*" not in action for action in actions), f"{name}: {actions}"
                assert all(r != "*" for r in resources), f"{name}: {resources}"


def secret_readers(template, secret):
    """The functions whose policies name `secret`."""
    readers = set()
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["Statement"]:
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                if {"Ref": secret} in resources:
                    readers.add(resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary", name))
    return readers


def test_only_functions_that_issue_tokens_can_read_the_private_signing_keys(template):
    issuers = {route["function"] for route in route_table() if route["signs"]}
    assert issuers == {"identities", "issue-token", "user-token"}
    assert secret_readers(template, "SigningKeysSecret") == issuers | {"rotate-signing-key"}
    for name, resource in rust_functions(template).items():
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        if "CALLSIGN_SIGNING_KEYS_SECRET_ID" in variables:
            assert binary in issuers, f"{name} is told where the private keys are"
    globals_ = template["Globals"]["Function"]["Environment"]["Variables"]
    assert "CALLSIGN_SIGNING_KEYS_SECRET_ID" not in globals_
    assert globals_["CALLSIGN_PUBLIC_KEYS_SECRET_ID"] == {"Ref": "PublicKeysSecret"}


def test_the_verifier_functions_read_the_public_keys_that_rotation_writes(template):
    readers = secret_readers(template, "PublicKeysSecret")
    assert {"jwks", "introspect", "authorizer", "revoke-tokens", "custom-id-lookup"} <= readers
    rotation = template["Resources"]["RotateSigningKeyFunction"]["Properties"]["Policies"][0]["Statement"]
    writes = [s for s in rotation if {"Ref": "PublicKeysSecret"} == s["Resource"]]
    assert writes and "secretsmanager:PutSecretValue" in writes[0]["Action"]


def test_functions_that_serve_no_admin_route_cannot_read_the_access_keys(template):
    access = {"Ref": "AccessKeysSecret"}
    for name in ["JwksFunction", "AuthorizerFunction", "UserTokenFunction", "CleanupFunction", "RotateSigningKeyFunction"]:
        statements = template["Resources"][name]["Properties"]["Policies"][0]["Statement"]
        for statement in statements:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert access not in resources, name


def test_the_table_keeps_data_and_feeds_the_cleanup(template):
    table = template["Resources"]["Table"]
    assert table["DeletionPolicy"] == "Retain"
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert props["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    stream = template["Resources"]["CleanupFunction"]["Properties"]["Events"]["Removals"]["Properties"]
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert "OnFailure" in stream["DestinationConfig"]


def test_no_secret_value_is_written_in_the_template(template):
    for name in ["SigningKeysSecret", "PublicKeysSecret", "AccessKeysSecret"]:
        props = template["Resources"][name]["Properties"]
        assert "SecretString" not in props, name
        assert "GenerateSecretString" in props, name


def http_api_routes(resource):
    return {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }


def test_each_function_serves_exactly_its_routes_of_the_route_table(template):
    table = route_table()
    deployed = {
        resource["Metadata"]["BuildProperties"]["Binary"]: http_api_routes(resource)
        for resource in rust_functions(template).values()
    }
    for function in sorted({route["function"] for route in table}):
        expected = {(r["method"], r["path"]) for r in table if r["function"] == function}
        # Browsers preflight the end-user routes: each of their paths takes OPTIONS too.
        expected |= {("OPTIONS", r["path"]) for r in table if r["function"] == function and r["access"] == "EndUser"}
        assert deployed.get(function) == expected, function
    for function, routes in deployed.items():
        if function not in {route["function"] for route in table}:
            assert not routes, f"{function} has HTTP routes the route table does not give it"

