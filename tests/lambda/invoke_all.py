"""Invokes every function with its events/ sample and checks each answer, against
DynamoDB Local and moto. Two ways, the same checks (scripts/test runs both):

* INVOKE_BACKEND=cargo-lambda (default): `cargo lambda invoke` against a running
  `cargo lambda watch` (host builds of the functions);
* INVOKE_BACKEND=arm64: the arm64 `bootstrap`s that `sam build` made (ARTIFACTS_DIR), each
  under qemu-user against a local Lambda Runtime API (tests/lambda/runtime_api.py), each
  with the environment template.yaml gives it (TEMPLATE_REFS and TEMPLATE_PARAMETERS,
  comma-separated NAME=VALUE, stand in for its resources and parameters) plus
  FUNCTION_ENV (where DynamoDB and Secrets Manager are), logs in LOG_DIR.

Every Rust function of template.yaml must be invoked at least once.

Environment: CARGO_LAMBDA (the cargo-lambda binary), WATCH_PORT, CALLSIGN_LOCAL (the
callsign-local binary, for `sign-event`), CALLSIGN_ACCESS_KEY (the deployment's primary
key), SIGNING_SECRET_ID, PUBLIC_SECRET_ID, TABLE_NAME, DYNAMODB_ENDPOINT,
SECRETSMANAGER_ENDPOINT (moto: EventBridge too), plus AWS_* credentials.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import urllib.request

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[2]
BACKEND = os.environ.get("INVOKE_BACKEND", "cargo-lambda")
INVOKED = set()
ARTIFACTS = None
def pairs(name):
    return dict(pair.split("=", 1) for pair in os.environ[name].split(",") if pair)


if BACKEND == "arm64":
    from runtime_api import Artifacts, function_environments

    # Each function gets only what template.yaml gives it (TEMPLATE_REFS names the
    # resources, TEMPLATE_PARAMETERS sets parameters), plus FUNCTION_ENV (where AWS is).
    ARTIFACTS = Artifacts(
        os.environ["ARTIFACTS_DIR"],
        ROOT / "template.yaml",
        pairs("FUNCTION_ENV"),
        os.environ["LOG_DIR"],
        environments=function_environments(
            ROOT / "template.yaml", pairs("TEMPLATE_REFS"), pairs("TEMPLATE_PARAMETERS")
        ),
    )
EVENTS = ROOT / "events"
SEEDED_ID = "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081"
PLACEHOLDER = "<a callsign access token>"


def seed():
    """The identity the sample events name, with its customId, written by the project's own
    store code (`callsign-local seed-identity`), never as hand-written items."""
    env = dict(os.environ, CALLSIGN_TABLE_NAME=os.environ["TABLE_NAME"],
               AWS_ENDPOINT_URL_DYNAMODB=os.environ["DYNAMODB_ENDPOINT"])
    seeded = subprocess.run([os.environ["CALLSIGN_LOCAL"], "seed-identity", SEEDED_ID, "alice@contoso.com"],
                            env=env, check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    check("the seeded identity is the one the events name", seeded == SEEDED_ID, seeded)


def secret(secret_id):
    client = boto3.client("secretsmanager", endpoint_url=os.environ["SECRETSMANAGER_ENDPOINT"])
    return client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]


def event(name, replace=None, sign=False):
    text = (EVENTS / name).read_text()
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    data = json.loads(text)
    if "SecretId" in data:
        data["SecretId"] = os.environ["SIGNING_SECRET_ID"]
    if sign:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as raw:
            json.dump(data, raw)
        signed = subprocess.run([os.environ["CALLSIGN_LOCAL"], "sign-event", raw.name],
                                check=True, capture_output=True, text=True).stdout
        os.unlink(raw.name)
        data = json.loads(signed)
    return data


def invoke(function, payload):
    INVOKED.add(function)
    if ARTIFACTS is not None:
        return ARTIFACTS.invoke(function, payload)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(payload, file)
    result = subprocess.run(
        [os.environ["CARGO_LAMBDA"], "lambda", "invoke", function, "--data-file", file.name,
         "--invoke-address", "127.0.0.1", "--invoke-port", os.environ["WATCH_PORT"], "--output-format", "json"],
        capture_output=True, text=True, timeout=120,
    )
    os.unlink(file.name)
    if result.returncode != 0:
        raise AssertionError(f"{function}: cargo lambda invoke failed: {result.stderr.strip()[-800:]}")
    return json.loads(result.stdout)


PASSED, FAILED = [], []


def check(label, condition, detail=""):
    (PASSED if condition else FAILED).append(label)
    print(("ok   " if condition else "FAIL ") + label + ("" if condition else f": {detail}"), flush=True)


def http(label, function, payload, status):
    answer = invoke(function, payload)
    check(f"{label} -> {status}", answer.get("statusCode") == status, json.dumps(answer)[:400])
    body = answer.get("body") or "null"
    return json.loads(body) if body.startswith(("{", "[")) else body


def identity_events():
    """The sample stream batch, delivered twice: one event per change on the default bus of
    moto's EventBridge (an archive on it keeps them; moto's state shows the archive)."""
    moto = os.environ["SECRETSMANAGER_ENDPOINT"]
    events = boto3.client("events", endpoint_url=moto)
    archive = f"invoke-{BACKEND}-{os.getpid()}"
    events.create_archive(ArchiveName=archive, EventPattern='{"source": ["callsign.identity"]}',
                          EventSourceArn=events.describe_event_bus()["Arn"])
    for delivery in ("", " (delivered again)"):
        answer = invoke("identity-events", event("identity-events-stream.json"))
        check(f"identity-events-stream.json{delivery} -> no failures", answer == {"batchItemFailures": []}, answer)
    with urllib.request.urlopen(f"{moto}/moto-api/data.json", timeout=30) as response:
        state = json.load(response)
    archived = next((a for a in state["events"]["Archive"] if a["name"] == archive), {"events": []})["events"]
    types = sorted(e["detail-type"] for e in archived)
    check("one event per change", types == ["IdentityCreated", "IdentityDeleted", "TokensRevoked"], types)


def cold_start_without_secrets_manager():
    """A function whose keys cannot be read fails its init, saying why, and serves nothing."""
    from runtime_api import Artifacts, FunctionError

    unreachable = dict(ARTIFACTS.env, AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:9")
    broken = Artifacts(os.environ["ARTIFACTS_DIR"], ROOT / "template.yaml", unreachable,
                       os.environ["LOG_DIR"], log_prefix="arm64-no-secrets-",
                       environments=ARTIFACTS.environments)
    try:
        answer = broken.invoke("issue-token", event("issue-token.json", sign=True))
        check("a cold start without Secrets Manager fails its init", False, answer)
    except FunctionError as error:
        check("a cold start without Secrets Manager fails its init", "init failed" in str(error), error)
    finally:
        broken.stop()
    log = broken.log_of("issue-token").read_text(errors="replace")
    check("the failed cold start logs why", "cold start failed" in log and "BatchGetSecretValue" in log, log[-600:])


def main():
    seed()
    http("jwks.json", "jwks", event("jwks.json"), 200)
    # The template's HEAD route: GET's headers, no body.
    head = event("jwks.json", {'"GET ': '"HEAD ', '"method": "GET"': '"method": "HEAD"'})
    answer = invoke("jwks", head)
    check("jwks.json as HEAD -> 200, no body", answer.get("statusCode") == 200 and not answer.get("body")
          and int(answer.get("headers", {}).get("content-length", "0")) > 0, json.dumps(answer)[:400])
    http("openid-configuration.json", "jwks", event("openid-configuration.json"), 200)
    http("identities-create.json", "identities", event("identities-create.json", sign=True), 201)
    http("identities-create-with-token.json", "identities", event("identities-create-with-token.json", sign=True), 201)
    created = http("identities-create-custom-id.json", "identities", event("identities-create-custom-id.json", sign=True), 201)
    check("the customId maps to the seeded identity", created.get("identity", {}).get("id") == SEEDED_ID, created)
    http("identities-get.json", "identities", event("identities-get.json", sign=True), 200)
    issued = http("issue-token.json", "issue-token", event("issue-token.json", sign=True), 200)
    token = issued.get("token", "")
    introspected = http("introspect.json", "introspect",
                        event("introspect.json", {"<a callsign access token>": token}, sign=True), 200)
    check("the issued token is active", introspected.get("active") is True, introspected)

    allowed = invoke("authorizer", event("authorizer-allowed.json", {PLACEHOLDER: token}))
    check("authorizer-allowed.json -> allowed", allowed.get("isAuthorized") is True, allowed)
    check("the authorizer passes the identity on", allowed.get("context", {}).get("identityId") == SEEDED_ID, allowed)
    denied = invoke("authorizer", event("authorizer-denied.json", {PLACEHOLDER: token}))
    check("authorizer-denied.json -> denied", denied.get("isAuthorized") is False, denied)

    # The template trusts no Teams tenant by default: no token is valid (401 InvalidAccessToken).
    refused = http("teams-exchange.json", "issue-token", event("teams-exchange.json", sign=True), 401)
    check("teams-exchange.json: the token, not the signature, is refused",
          isinstance(refused, dict) and refused.get("error", {}).get("code") == "InvalidAccessToken", refused)
    http("revoke-tokens.json", "revoke-tokens", event("revoke-tokens.json", sign=True), 204)
    http("custom-id-lookup.json", "custom-id-lookup", event("custom-id-lookup.json", sign=True), 200)
    http("user-token.json", "user-token", event("user-token.json"), 200)
    http("user-get.json", "user-token", event("user-get.json"), 200)
    http("user-delete.json", "user-token", event("user-delete.json"), 204)
    http("guest-token.json", "user-token", event("guest-token.json"), 200)
    http("identities-delete.json", "identities", event("identities-delete.json", sign=True), 204)

    stream = invoke("cleanup", event("cleanup-stream.json"))
    check("cleanup-stream.json -> no failures", stream == {"batchItemFailures": []}, stream)
    sweep = invoke("cleanup", event("cleanup-schedule.json"))
    check("cleanup-schedule.json -> a sweep report", "scanned" in sweep, sweep)
    identity_events()

    for step in ["create", "set", "test", "finish"]:
        answer = invoke("rotate-signing-key", event(f"rotation-{step}-secret.json"))
        check(f"rotation-{step}-secret.json -> done", answer is None, answer)
    signing, public = (json.loads(secret(os.environ[name])) for name in ("SIGNING_SECRET_ID", "PUBLIC_SECRET_ID"))
    in_force = [signing["current"]["kid"]] + ([signing["previous"]["kid"]] if "previous" in signing else [])
    published = [key["kid"] for key in public["keys"]]
    check("the rotation published the new set's public keys", published == in_force, (published, in_force))
    check("no private key is published", all("d" not in key for key in public["keys"]), public)

    if ARTIFACTS is not None:
        cold_start_without_secrets_manager()
    from runtime_api import artifact_dirs as template_functions

    every = set(template_functions(ROOT / "template.yaml", "."))
    check("every function of the template was invoked", INVOKED == every, sorted(every ^ INVOKED))
    print(f"{BACKEND} invoke: {len(PASSED)} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        if ARTIFACTS is not None:
            ARTIFACTS.stop()
