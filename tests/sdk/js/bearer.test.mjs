// The official JS SDK built with a token credential against the local server over HTTPS:
// `new CommunicationIdentityClient(endpoint, new DefaultAzureCredential())`, the credential
// configured by the environment alone (IDENTITY_ENDPOINT, IDENTITY_HEADER: the App Service
// managed-identity protocol the server's development issuer serves;
// AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential): create, issue, revoke, delete; and
// the Teams token exchange (getTokenForTeamsUser), its success and refusals (401 for a token
// not valid here, checked first; then 400 for an appId/userId that does not fit the token).
//
// Environment: CALLSIGN_READY_FILE (the ready file of `callsign-local --tls`: endpoint,
// devOidcIssuer, identityEndpoint, identityHeader), NODE_EXTRA_CA_CERTS (its certificate).
// Run: node --test bearer.test.mjs

import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { before, describe, test } from "node:test";

import { CommunicationIdentityClient } from "@azure/communication-identity";
import { DefaultAzureCredential } from "@azure/identity";

const TEAMS_AUDIENCE = "https://auth.msft.communication.azure.com";
const TEAMS_SCOPES = [`${TEAMS_AUDIENCE}/Teams.ManageCalls`, `${TEAMS_AUDIENCE}/Teams.ManageChats`];

function readReady() {
  const path = (process.env.CALLSIGN_READY_FILE ?? "").trim();
  if (!path) {
    throw new Error("CALLSIGN_READY_FILE is not set: run this suite through scripts/test");
  }
  const ready = JSON.parse(readFileSync(path, "utf8"));
  assert.ok(ready.endpoint.startsWith("https://"), `${path}: start the server with --tls`);
  return ready;
}

const ready = readReady();
const endpoint = ready.endpoint.replace(/\/+$/, "");
const issuer = ready.devOidcIssuer;

// @azure/identity settles on its managed-identity source once per process: the
// environment is in place before the first credential exists.
for (const name of ["AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE",
  "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"]) {
  delete process.env[name];
}
process.env.IDENTITY_ENDPOINT = ready.identityEndpoint;
process.env.IDENTITY_HEADER = ready.identityHeader;
process.env.AZURE_TOKEN_CREDENTIALS = "ManagedIdentityCredential";

function decodePart(part) {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

function payloadOf(token) {
  const parts = token.split(".");
  assert.equal(parts.length, 3, "a compact JWT");
  return decodePart(parts[1]);
}

function b64url(value) {
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value));
  return bytes.toString("base64url");
}

async function postJson(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

async function devToken(route, body, headers) {
  const answer = await postJson(`${issuer}/${route}`, body, headers);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.access_token;
}

const adminToken = (roles, claims = {}) =>
  devToken("admin-token", { roles, ...claims }, { "X-IDENTITY-HEADER": ready.identityHeader });
const teamsToken = (oid, appid, claims = {}) => devToken("teams-token", { oid, appid, ...claims });

/** Introspection with a bearer token of role identity.read. */
async function introspect(token) {
  const answer = await postJson(`${endpoint}/tokens/:introspect?api-version=2023-10-01`, { token }, {
    authorization: `Bearer ${await adminToken(["identity.read"])}`,
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

/** A policy that records the Authorization scheme of each request the SDK sends. */
function spy() {
  const schemes = [];
  const policy = {
    name: "authorizationSchemeSpy",
    async sendRequest(request, next) {
      schemes.push((request.headers.get("authorization") ?? "").split(" ")[0]);
      return next(request);
    },
  };
  return { schemes, options: { additionalPolicies: [{ policy, position: "perRetry" }] } };
}

function rejectsWith(promise, statusCode, code, target) {
  return assert.rejects(promise, (error) => {
    assert.equal(error.statusCode, statusCode, `${error.statusCode} ${error.code} ${error.message}`);
    assert.equal(error.code, code, error.message);
    if (target !== undefined) {
      const body = error.response?.parsedBody ?? JSON.parse(error.response?.bodyAsText ?? "{}");
      assert.equal(body?.error?.target, target, JSON.stringify(body));
    }
    return true;
  });
}

describe("DefaultAzureCredential (managed identity, from the environment)", () => {
  test("create, issue, revoke and delete", async () => {
    const { schemes, options } = spy();
    const client = new CommunicationIdentityClient(endpoint, new DefaultAzureCredential(), options);
    const plain = await client.createUser();
    assert.match(plain.communicationUserId, /^8:acs:/);
    const { user, token } = await client.createUserAndToken(["chat"]);
    assert.match(user.communicationUserId, /^8:acs:/);
    assert.equal(payloadOf(token).sub, user.communicationUserId);
    const again = await client.getToken(user, ["voip"]);
    assert.ok(again.token && again.token !== token);
    assert.equal((await introspect(again.token)).active, true);

    await client.revokeTokens(user);
    assert.equal((await introspect(again.token)).active, false);
    assert.equal((await introspect(token)).active, false);

    await client.deleteUser(user);
    await client.deleteUser(plain);
    await rejectsWith(client.getToken(user, ["chat"]), 404, "IdentityNotFound");
    assert.ok(schemes.length > 0 && schemes.every((scheme) => scheme === "Bearer"), JSON.stringify(schemes));
  });

  test("a role that does not allow the operation is 403, and changes nothing", async () => {
    const admin = new CommunicationIdentityClient(endpoint, new DefaultAzureCredential());
    const { user, token } = await admin.createUserAndToken(["chat"]);
    const issueOnly = await adminToken(["token.issue"]);
    const credential = { getToken: async () => ({ token: issueOnly, expiresOnTimestamp: Date.now() + 3_600_000 }) };
    const client = new CommunicationIdentityClient(endpoint, credential);
    await rejectsWith(client.revokeTokens(user), 403, "Forbidden");
    await rejectsWith(client.deleteUser(user), 403, "Forbidden");
    assert.ok((await client.getToken(user, ["voip"])).token, "token.issue may issue");
    assert.equal((await introspect(token)).active, true);
    await admin.deleteUser(user);
  });

  test("an expired bearer is 401", async () => {
    const expired = await adminToken(["identity.admin"], { expiresIn: -3600 });
    const credential = { getToken: async () => ({ token: expired, expiresOnTimestamp: Date.now() + 3_600_000 }) };
    const client = new CommunicationIdentityClient(endpoint, credential);
    await rejectsWith(client.createUser(), 401, "Denied");
  });
});

describe("getTokenForTeamsUser", () => {
  let client;
  let foreignKey;
  let trustedKid;

  before(async () => {
    client = new CommunicationIdentityClient(endpoint, new DefaultAzureCredential());
    foreignKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const jwks = await (await fetch(`${issuer}/jwks.json`)).json();
    trustedKid = jwks.keys[0].kid;
    assert.ok(trustedKid, JSON.stringify(jwks));
  });

  /** A Teams token as the dev issuer makes them, signed with a key the server never saw. */
  function foreignTeamsToken(oid, appid, kid) {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: issuer, aud: TEAMS_AUDIENCE, sub: oid, oid, appid,
      tid: "00000000-0000-0000-0000-000000000000", scp: TEAMS_SCOPES.join(" "), iat: now, exp: now + 3600,
    };
    const input = `${b64url({ alg: "RS256", typ: "JWT", kid })}.${b64url(claims)}`;
    return `${input}.${b64url(sign("sha256", Buffer.from(input), foreignKey))}`;
  }

  test("a Teams user's token becomes a token of 8:orgid:<oid>", async () => {
    const oid = randomUUID();
    const appid = randomUUID();
    const aad = await teamsToken(oid, appid);
    const { token, expiresOn } = await client.getTokenForTeamsUser({
      teamsUserAadToken: aad, clientId: appid, userObjectId: oid,
    });
    const payload = payloadOf(token);
    assert.equal(payload.sub, `8:orgid:${oid}`);
    assert.equal(payload.skypeid, `orgid:${oid}`);
    assert.deepEqual(payload.acsScope.split(",").sort(), ["chat", "voip"]);
    // It ends when the Entra token does.
    assert.equal(payload.exp, payloadOf(aad).exp);
    assert.ok(expiresOn instanceof Date);
    assert.equal(expiresOn.getTime(), payload.exp * 1000);
    const introspection = await introspect(token);
    assert.equal(introspection.active, true);
    assert.equal(introspection.sub, `8:orgid:${oid}`);
  });

  for (const [name, fields, target] of [
    ["wrong appId", ({ oid }) => ({ clientId: randomUUID(), userObjectId: oid }), "appId"],
    ["wrong userId", ({ appid }) => ({ clientId: appid, userObjectId: randomUUID() }), "userId"],
    ["appId not a GUID", ({ oid }) => ({ clientId: "my-app", userObjectId: oid }), "appId"],
    ["userId not a GUID", ({ appid }) => ({ clientId: appid, userObjectId: "alice@contoso.com" }), "userId"],
    ["empty appId", ({ oid }) => ({ clientId: "", userObjectId: oid }), "AppId"],
    ["empty userId", ({ appid }) => ({ clientId: appid, userObjectId: "" }), "UserId"],
  ]) {
    test(`400 ValidationError (${target}): ${name}`, async () => {
      const oid = randomUUID();
      const appid = randomUUID();
      const teamsUserAadToken = await teamsToken(oid, appid);
      await rejectsWith(
        client.getTokenForTeamsUser({ teamsUserAadToken, ...fields({ oid, appid }) }),
        400,
        "ValidationError",
        target,
      );
    });
  }

  for (const [name, make] of [
    ["an expired token", (oid, appid) => teamsToken(oid, appid, { expiresIn: -3600 })],
    ["a token without the Teams scopes", (oid, appid) => teamsToken(oid, appid, { scp: "User.Read" })],
    ["a token with Teams.ManageCalls only", (oid, appid) => teamsToken(oid, appid, { scp: TEAMS_SCOPES[0] })],
    ["a token with Teams.ManageChats only", (oid, appid) => teamsToken(oid, appid, { scp: TEAMS_SCOPES[1] })],
    ["a token for another audience", (oid, appid) => teamsToken(oid, appid, { aud: "https://graph.microsoft.com" })],
    ["an admin token", (oid) => adminToken(["identity.admin"], { sub: oid })],
    ["a token signed by a foreign key (kid not in the JWKS)", async (oid, appid) => foreignTeamsToken(oid, appid, "not-in-the-jwks")],
    ["a token signed by a foreign key (a trusted kid)", async (oid, appid) => foreignTeamsToken(oid, appid, trustedKid)],
    ["a malformed token", async () => "not.a-jwt"],
    ["an empty token", async () => ""],
  ]) {
    test(`401 InvalidAccessToken: ${name}`, async () => {
      const oid = randomUUID();
      const appid = randomUUID();
      const teamsUserAadToken = await make(oid, appid);
      await rejectsWith(
        client.getTokenForTeamsUser({ teamsUserAadToken, clientId: appid, userObjectId: oid }),
        401,
        "InvalidAccessToken",
      );
    });
  }

  // The token is checked before the other fields, as Microsoft's own tests send it.
  for (const teamsUserAadToken of ["", "invalid"]) {
    test(`401 InvalidAccessToken: token ${JSON.stringify(teamsUserAadToken)} with an empty userId`, async () => {
      await rejectsWith(
        client.getTokenForTeamsUser({ teamsUserAadToken, clientId: randomUUID(), userObjectId: "" }),
        401,
        "InvalidAccessToken",
      );
    });
  }
});
