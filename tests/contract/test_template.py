"""template.yaml against the workspace: every function in functions/ is deployed, built
from its own binary, serves exactly its routes of the route table, and is granted only
named actions on named resources."""

import functools
import os
import pathlib
import subprocess

import pytest
import yaml

import json
import re

from route_table import documented_metrics, route_table

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


def load(name):
    return yaml.load((ROOT / name).read_text(), Loader=_Loader)


NO_VALUE = object()


def resolved(template, conditions):
    """The template as CloudFormation sees it when each condition in `conditions` has the
    value given (others are left as they are): `If`s on them chosen, resources whose
    Condition is false removed, `AWS::NoValue` dropped."""

    def walk(node):
        if isinstance(node, dict):
            if list(node) == ["If"]:
                cond, then, other = node["If"]
                if cond not in conditions:  # kept, with its AWS::NoValue branch
                    return {"If": [cond, keep(then), keep(other)]}
                return walk(then if conditions[cond] else other)
            if node == {"Ref": "AWS::NoValue"}:
                return NO_VALUE
            out = {k: walk(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not NO_VALUE}
        if isinstance(node, list):
            return [v for v in (walk(v) for v in node) if v is not NO_VALUE]
        return node

    def keep(node):
        return {"Ref": "AWS::NoValue"} if node == {"Ref": "AWS::NoValue"} else walk(node)

    out = walk(template)
    out["Resources"] = {
        name: r for name, r in out["Resources"].items() if conditions.get(r.get("Condition"), True)
    }
    return out


def single_region(template):
    return resolved(template, {"SingleRegion": True, "MultiRegion": False, "RotatesKeys": True})


def multi_region(template, primary):
    return resolved(template, {"SingleRegion": False, "MultiRegion": True, "RotatesKeys": primary})


@pytest.fixture(scope="module")
def raw_template():
    return load("template.yaml")


@pytest.fixture(scope="module")
def template(raw_template):
    """As deployed by default: one region."""
    return single_region(raw_template)


def as_list(value):
    """An IAM statement's Action or Resource: one value or a list of them."""
    return value if isinstance(value, list) else [value]


def rust_functions(template):
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda"
    }


def statements(template, function):
    """A function's IAM statements: SAM's inline `Policies`, or those of the role its `Role`
    names (the stream consumers have roles of their own)."""
    props = function["Properties"]
    if "Role" not in props:
        return [s for policy in props.get("Policies", []) for s in policy["Statement"]]
    role = template["Resources"][props["Role"]["GetAtt"].removesuffix(".Arn")]
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


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
        props = resource["Properties"]
        assert not ("Role" in props and "Policies" in props), f"{name}: SAM ignores Policies beside a Role"
        for policy in props.get("Policies", []):
            assert isinstance(policy, dict) and "Statement" in policy, f"{name}: only inline statements"
        for statement in statements(template, resource):
            actions = as_list(statement["Action"])
            resources = as_list(statement["Resource"])
            assert all("*" not in action for action in actions), f"{name}: {actions}"
            # IAM scopes BatchGetSecretValue to no resource; it reads only secrets the
            # function may GetSecretValue anyway.
            if actions != ["secretsmanager:BatchGetSecretValue"]:
                assert all(r != "*" for r in resources), f"{name}: {resources}"


# What SAM gives every function's role: CloudWatch Logs, and X-Ray (Tracing: Active).
BASIC_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


@functools.cache
def sam_transformed():
    """template.yaml through SAM's own transform, as CloudFormation deploys it
    (sam_transform.py, run with the SAM CLI's Python: the test command sets SAM_PYTHON)."""
    python = os.environ.get("SAM_PYTHON")
    if not python:
        pytest.fail("SAM_PYTHON is not set: run this through scripts/test, which installs the SAM CLI")
    out = subprocess.run([python, str(ROOT / "tests/contract/sam_transform.py"), str(ROOT / "template.yaml")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_deployed_roles_hold_the_logs_and_traces_managed_policies_and_no_other():
    # SAM attaches AWSLambdaDynamoDBExecutionRole (every stream in the account) to a
    # function with a DynamoDB event; the stream consumers' own roles keep it out, and
    # still log and trace (Tracing: Active) as SAM's roles do.
    deployed = sam_transformed()["Resources"]
    roles = 0
    for name, resource in deployed.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role = deployed[resource["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        arns = {
            arn["Fn::Sub"].replace("${AWS::Partition}", "aws") if isinstance(arn, dict) else arn
            for arn in role.get("ManagedPolicyArns", [])
        }
        assert arns == BASIC_MANAGED_POLICIES, (name, arns ^ BASIC_MANAGED_POLICIES)
        roles += 1
    assert roles == len(rust_functions(load("template.yaml"))) + 1  # and the downstream example


def test_stream_consumers_may_read_their_stream_and_send_to_their_dead_letter_queue(template):
    # What SAM's managed stream policy and on-failure policy granted, now in their own roles.
    consumers = 0
    for name, resource in rust_functions(template).items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "DynamoDB":
                continue
            consumers += 1
            granted = statements(template, resource)
            reads = [s for s in granted if "dynamodb:GetRecords" in as_list(s["Action"])]
            assert [s["Resource"] for s in reads] == [event["Properties"]["Stream"]], name
            assert {"dynamodb:DescribeStream", "dynamodb:GetShardIterator"} <= set(as_list(reads[0]["Action"])), name
            queue = event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
            assert any(s["Action"] == "sqs:SendMessage" and s["Resource"] == queue for s in granted), name
    assert consumers == 2


def test_every_route_s_invoke_permission_matches_its_requests():
    # API Gateway invokes with the request's own path in the source ARN: a path parameter
    # left literal in the permission (SAM turns only `{name}` and `{proxy+}` into `*`)
    # would refuse every request of that route.
    permissions = [r["Properties"] for r in sam_transformed()["Resources"].values()
                   if r["Type"] == "AWS::Lambda::Permission" and "SourceArn" in r["Properties"]]
    routes = [p for p in permissions if "execute-api" in json.dumps(p["SourceArn"])]
    assert len(routes) >= len(route_table())
    for permission in routes:
        arn = permission["SourceArn"]["Fn::Sub"][0]
        assert "{" not in arn.split("${__Stage__}")[1], arn


def test_schedule_names_are_unique_to_the_stack():
    # SAM names a schedule after its event, and names are unique per account and region:
    # two stacks in one region would collide.
    schedules = [r for r in sam_transformed()["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert schedules
    for schedule in schedules:
        assert "AWS::StackId" in json.dumps(schedule["Properties"]["Name"]), schedule["Properties"]["Name"]


def secret_readers(template, secret):
    """The functions whose policies let them read `secret` (GetSecretValue)."""
    readers = set()
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for statement in statements(template, resource):
            resources = as_list(statement["Resource"])
            actions = as_list(statement["Action"])
            if {"Ref": secret} in resources and "secretsmanager:GetSecretValue" in actions:
                readers.add(resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary", name))
    return readers


def test_functions_that_load_two_key_secrets_may_fetch_them_in_one_call(template):
    readers = {secret: secret_readers(template, secret)
               for secret in ["SigningKeysSecret", "PublicKeysSecret", "AccessKeysSecret"]}
    batching = set()
    for resource in rust_functions(template).values():
        for statement in statements(template, resource):
            if statement["Action"] == "secretsmanager:BatchGetSecretValue":
                assert statement["Resource"] == "*"
                batching.add(resource["Metadata"]["BuildProperties"]["Binary"])
    # The cold start's KeyRing: signing (or else public) keys, and the access keys.
    two_key_sets = {name for name in readers["AccessKeysSecret"]
                    if name in readers["SigningKeysSecret"] | readers["PublicKeysSecret"]}
    assert two_key_sets == {"identities", "issue-token", "introspect"}, two_key_sets
    assert batching == two_key_sets, batching


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
    assert readers == {"jwks", "introspect", "authorizer", "rotate-signing-key"}, readers
    rotation = statements(template, template["Resources"]["RotateSigningKeyFunction"])
    writes = [s for s in rotation if {"Ref": "PublicKeysSecret"} == s["Resource"]]
    assert writes and "secretsmanager:PutSecretValue" in writes[0]["Action"]


def test_functions_that_serve_no_admin_route_cannot_read_the_access_keys(template):
    access = {"Ref": "AccessKeysSecret"}
    for name in ["JwksFunction", "AuthorizerFunction", "UserTokenFunction", "CleanupFunction", "RotateSigningKeyFunction"]:
        for statement in statements(template, template["Resources"][name]):
            resources = as_list(statement["Resource"])
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
        expected = {(r["method"], r["gateway_path"]) for r in table if r["function"] == function}
        # Browsers preflight the end-user routes: each of their paths takes OPTIONS too.
        expected |= {("OPTIONS", r["gateway_path"]) for r in table if r["function"] == function and r["access"] == "EndUser"}
        # A public GET answers HEAD too (routes.rs), and an HTTP API routes HEAD only where
        # a route names it.
        expected |= {("HEAD", r["gateway_path"]) for r in table
                     if r["function"] == function and r["access"] == "Public" and r["method"] == "GET"}
        assert deployed.get(function) == expected, function
    for function, routes in deployed.items():
        if function not in {route["function"] for route in table}:
            assert not routes, f"{function} has HTTP routes the route table does not give it"



def alarms(template):
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def alarm_metrics(props):
    """(namespace, name, {dimension: value}) of every metric an alarm reads."""
    if "MetricName" in props:
        yield props["Namespace"], props["MetricName"], {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
    for query in props.get("Metrics", []):
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            yield metric["Namespace"], metric["MetricName"], {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


def test_every_function_has_error_and_throttle_alarms(template):
    watched = {}
    for props in alarms(template).values():
        for namespace, name, dimensions in alarm_metrics(props):
            if namespace == "AWS/Lambda":
                watched.setdefault(name, set()).add(json.dumps(dimensions["FunctionName"], sort_keys=True))
    for resource in rust_functions(template):
        ref = json.dumps({"Ref": resource}, sort_keys=True)
        assert ref in watched.get("Errors", set()), f"{resource}: no Errors alarm"
        assert ref in watched.get("Throttles", set()), f"{resource}: no Throttles alarm"


def test_the_operational_alarms_exist(template):
    read = {(ns, name) for props in alarms(template).values() for ns, name, _ in alarm_metrics(props)}
    for expected in [
        ("AWS/ApiGateway", "5xx"),
        ("AWS/DynamoDB", "ReadThrottleEvents"),
        ("AWS/DynamoDB", "WriteThrottleEvents"),
        ("AWS/DynamoDB", "SystemErrors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("callsign", "RotationSteps"),
        ("callsign", "RotationsFinished"),
        ("callsign", "AuthorizerDecisions"),
        ("callsign", "AdminAuthFailures"),
    ]:
        assert expected in read, expected
    overdue = alarms(template)["RotationOverdueAlarm"]
    assert overdue["Period"] * overdue["EvaluationPeriods"] == 3 * 86400
    assert overdue["TreatMissingData"] == "breaching", "no rotation at all must alarm too"


def test_each_alarm_says_what_to_do_and_tells_the_topic(template):
    for name, props in alarms(template).items():
        assert len(props.get("AlarmDescription", "")) > 60, f"{name}: say what it means and what to do"
        for key in ["AlarmActions", "OKActions"]:
            assert props[key] == {"If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}, name
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""


def dashboard_metrics(template):
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Sub"]
    # The map's text fragments (a row only some regions have) go in before the names.
    for name, value in variables.items():
        text = value.get("Sub") if isinstance(value, dict) else value
        if isinstance(text, str):
            body = body.replace("${" + name + "}", text)
    document = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    for widget in document["widgets"]:
        previous = None
        for row in widget["properties"]["metrics"]:
            # CloudWatch's shorthand: "..." and "." repeat the previous row's parts.
            if row[0] == "...":
                row = previous[: len(previous) - len(row) + 1] + row[1:]
            row = [previous[i] if part == "." else part for i, part in enumerate(row)]
            previous = row
            yield row[0], row[1], dict(zip(row[2::2], row[3::2]))


def test_alarms_and_dashboard_read_only_metrics_the_code_emits(template):
    documented = documented_metrics()
    read = [m for props in alarms(template).values() for m in alarm_metrics(props)]
    read += list(dashboard_metrics(template))
    custom = [(name, dims) for namespace, name, dims in read if namespace == "callsign"]
    assert custom, "no callsign metric is watched"
    binaries = {r["Metadata"]["BuildProperties"]["Binary"] for r in rust_functions(template).values()}
    for name, dims in custom:
        assert name in documented, f"{name} is not emitted (signals::METRICS)"
        assert sorted(d for d in dims if d != "Function") == sorted(documented[name]), name
        assert dims.get("Function") in binaries, f"{name}: Function {dims.get('Function')} is no function"
        for dimension, value in dims.items():
            if dimension != "Function":
                assert value in documented[name][dimension], f"{name}: {dimension}={value} is never emitted"


def sample_event_functions():
    """The functions the events/ samples are for, read off each sample's shape."""
    route_owner = {f"{r['method']} {r['gateway_path']}": r["function"] for r in route_table()}
    owners = set()
    for path in sorted((ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text())
        if "Step" in event and "SecretId" in event:
            owners.add("rotate-signing-key")
        elif "Records" in event and path.name.startswith("identity-events"):
            owners.add("identity-events")
        elif "Records" in event or event.get("source") in ("aws.scheduler", "aws.events"):
            owners.add("cleanup")
        elif event.get("type") == "REQUEST" and "identitySource" in event:
            owners.add("authorizer")
        elif event.get("routeKey") in route_owner:
            owners.add(route_owner[event["routeKey"]])
        else:
            pytest.fail(f"{path.name}: no function takes this event")
    return owners


def test_every_function_has_a_sample_event(template):
    binaries = {r["Metadata"]["BuildProperties"]["Binary"] for r in rust_functions(template).values()}
    assert binaries <= sample_event_functions(), binaries - sample_event_functions()


def test_every_function_has_a_built_arm64_artifact(template):
    """After `sam build` (the test command sets ARTIFACTS_DIR to its output)."""
    import os

    artifacts = os.environ.get("ARTIFACTS_DIR", "").strip()
    if not artifacts:
        pytest.fail("ARTIFACTS_DIR is not set: run this through scripts/test, after sam build")
    for name, resource in rust_functions(template).items():
        bootstrap = pathlib.Path(artifacts) / name / "bootstrap"
        assert bootstrap.is_file(), f"{name}: sam build made no {bootstrap}"
        head = bootstrap.read_bytes()[:20]
        assert head[:4] == b"\x7fELF", f"{bootstrap} is not an ELF binary"
        assert int.from_bytes(head[18:20], "little") == 183, f"{bootstrap} is not built for arm64 (aarch64)"


# ---- multi-region (docs/multi-region.md) ------------------------------------------------

SINGLE_REGION_RESOURCES = {"Table", "SigningKeysSecret", "PublicKeysSecret", "AccessKeysSecret"}


def references(node):
    """Every resource or parameter name a part of the template refers to."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "GetAtt":
                yield (value.split(".")[0] if isinstance(value, str) else value[0])
            elif key == "Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                yield from (name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)
                            if name.split(".")[0] not in variables and not name.startswith("AWS::"))
                yield from references(variables)
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_one_region_is_the_default_and_unchanged(raw_template, template):
    for name in ["Regions", "PrimaryRegion", "GlobalTableName", "GlobalTableStreamArn", "GlobalSecretsPrefix"]:
        assert raw_template["Parameters"][name]["Default"] == ""
    assert SINGLE_REGION_RESOURCES <= set(template["Resources"])
    assert "CALLSIGN_REGIONS" not in template["Globals"]["Function"]["Environment"]["Variables"]
    assert {"GlobalTableName", "GlobalTableStreamArn", "GlobalSecretsPrefix", "Regions"}.isdisjoint(
        set(references(template["Resources"])) | set(references(template["Globals"])) | set(references(template["Outputs"]))
    )


@pytest.mark.parametrize("primary", [True, False])
def test_a_multi_region_stack_uses_the_global_table_and_the_replicated_secrets(raw_template, primary):
    deployed = multi_region(raw_template, primary)
    assert SINGLE_REGION_RESOURCES.isdisjoint(deployed["Resources"])
    used = set(references(deployed["Resources"])) | set(references(deployed["Globals"])) | set(references(deployed["Outputs"]))
    # A stack refers to none of the resources it does not create.
    removed = set(raw_template["Resources"]) - set(deployed["Resources"])
    assert used.isdisjoint(removed), used & removed
    variables = deployed["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["CALLSIGN_REGIONS"] == {"Join": [",", {"Ref": "Regions"}]}
    assert variables["CALLSIGN_TABLE_NAME"] == {"Ref": "GlobalTableName"}
    # Signing keys rotate only in the primary region, where the secrets can be written.
    assert ("SigningKeysRotation" in deployed["Resources"]) == primary
    assert ("RotationOverdueAlarm" in deployed["Resources"]) == primary
    # So the function that rotates them, its alarms and its dashboard row exist there only.
    rotation = {"RotateSigningKeyFunction", "RotateSigningKeyErrorsAlarm", "RotateSigningKeyThrottlesAlarm",
                "RotationFailedAlarm"}
    assert (rotation & set(deployed["Resources"])) == (rotation if primary else set())
    errors_row = [m for m in dashboard_metrics(deployed) if m[:2] == ("AWS/Lambda", "Errors")]
    assert len(errors_row) == (8 if primary else 7), errors_row


def test_a_multi_region_stack_reaches_other_regions_replicas_only_in_the_deployment_s_regions(raw_template):
    deployed = multi_region(raw_template, True)
    checked = 0
    for name, resource in rust_functions(deployed).items():
        for statement in statements(deployed, resource):
            actions = as_list(statement["Action"])
            # The table's statements only (the stream's name GlobalTableStreamArn).
            if not actions[0].startswith("dynamodb:") or statement["Resource"] == {"Ref": "GlobalTableStreamArn"}:
                continue
            checked += 1
            arn = statement["Resource"]["Sub"]
            assert arn.endswith(":table/${GlobalTableName}"), (name, arn)
            if ":dynamodb:*:" in arn:
                assert statement["Condition"] == {
                    "StringEquals": {"aws:RequestedRegion": {"Ref": "Regions"}}
                }, name
            else:
                assert ":dynamodb:${AWS::Region}:" in arn, (name, arn)
    assert checked, "no table statement found"
    # The lifecycle publisher reads and writes only its own region's replica.
    events = statements(deployed, deployed["Resources"]["IdentityEventsFunction"])[0]
    assert ":dynamodb:${AWS::Region}:" in events["Resource"]["Sub"]


@pytest.fixture(scope="module")
def global_template():
    return load("global.yaml")


def test_the_global_table_has_the_single_region_table_s_schema_and_a_replica_per_region(raw_template, global_template):
    table = raw_template["Resources"]["Table"]["Properties"]
    global_table = global_template["Resources"]["Table"]
    assert global_table["Type"] == "AWS::DynamoDB::GlobalTable"
    assert global_table["DeletionPolicy"] == "Retain"
    props = global_table["Properties"]
    for key in ["BillingMode", "AttributeDefinitions", "KeySchema", "TimeToLiveSpecification", "StreamSpecification",
                "SSESpecification"]:
        assert props[key] == table[key], key
    regions = [replica.get("Region") for replica in props["Replicas"]]
    assert regions[:2] == [{"Ref": "AWS::Region"}, {"Ref": "SecondRegion"}]
    assert all(
        (r["If"][1] if "If" in r else r)["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
        for r in props["Replicas"]
    )


def test_the_global_secrets_are_generated_and_replicated_under_the_names_the_regions_read(raw_template, global_template):
    deployed = multi_region(raw_template, True)
    variables = [r["Properties"].get("Environment", {}).get("Variables", {}) for r in rust_functions(deployed).values()]
    variables.append(deployed["Globals"]["Function"]["Environment"]["Variables"])
    read = {v["Sub"] for vs in variables for k, v in vs.items() if k.endswith("_SECRET_ID")}
    written = set()
    for name in SINGLE_REGION_RESOURCES - {"Table"}:
        props = global_template["Resources"][name]["Properties"]
        assert "SecretString" not in props and "GenerateSecretString" in props, name
        assert props["ReplicaRegions"][0] == {"Region": {"Ref": "SecondRegion"}}, name
        written.add(props["Name"]["Sub"].replace("${AWS::StackName}", "${GlobalSecretsPrefix}"))
        # Each region's functions get the same key material.
        assert props["GenerateSecretString"] == raw_template["Resources"][name]["Properties"]["GenerateSecretString"], name
    assert read == written, (read, written)
    # And the functions may read exactly those secrets (Secrets Manager adds a 6-character
    # suffix to a secret's name in its ARN).
    granted = set()
    for resource in rust_functions(deployed).values():
        for statement in statements(deployed, resource):
            for target in as_list(statement["Resource"]):
                if isinstance(target, dict) and ":secretsmanager:" in target.get("Sub", ""):
                    granted.add(target["Sub"])
    prefix = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    assert granted == {f"{prefix}{name}-??????" for name in written}, granted
    outputs = set(global_template["Outputs"])
    assert {"Regions", "PrimaryRegion", "GlobalTableName", "GlobalSecretsPrefix"} <= outputs
    assert outputs - {"StreamArnCommand"} <= set(raw_template["Parameters"])
