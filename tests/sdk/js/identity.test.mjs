// The official @azure/communication-identity SDK (1.3.1) against a running callsign server.
// Environment (scripts/test sets it from callsign-local's ready file): CALLSIGN_ENDPOINT
// (http://127.0.0.1:PORT), CALLSIGN_ACCESS_KEY, CALLSIGN_RESOURCE_ID.
// Run: node --test identity.test.mjs

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, test } from "node:test";

import { CommunicationIdentityClient } from "@azure/communication-identity";

function requiredEnv(name) {
  const value = (process.env[name] ?? "").trim();
  if (!value) {
    throw new Error(`${name} is not set: run this suite through scripts/test`);
  }
  return value;
}

const MINUTE_MS = 60_000;
const CLOCK_SLACK_MS = 2 * MINUTE_MS;

function connectionString(endpoint, key) {
  // One slash between host and the rest: "http://127.0.0.1:PORT/".
  return `endpoint=${endpoint.replace(/\/+$/, "")}/;accesskey=${key}`;
}

function decodePayload(token) {
  const parts = token.split(".");
  assert.equal(parts.length, 3, "a compact JWT");
  return JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
}

function assertExpiresAbout(expiresOn, minutes, issuedAfterMs) {
  assert.ok(expiresOn instanceof Date, `expiresOn is a Date, got ${typeof expiresOn}`);
  assert.ok(!Number.isNaN(expiresOn.getTime()), "expiresOn is a valid date");
  const expected = issuedAfterMs + minutes * MINUTE_MS;
  assert.ok(
    Math.abs(expiresOn.getTime() - expected) <= CLOCK_SLACK_MS,
    `expiresOn ${expiresOn.toISOString()} is not about ${minutes} min from ${new Date(issuedAfterMs).toISOString()}`,
  );
}

function assertToken({ token, expiresOn }, { scopes, minutes, issuedAfterMs, userId }) {
  assertExpiresAbout(expiresOn, minutes, issuedAfterMs);
  const payload = decodePayload(token);
  assert.equal(payload.exp * 1000, expiresOn.getTime(), "exp equals expiresOn");
  assert.deepEqual(payload.acsScope.split(",").sort(), [...scopes].sort());
  assert.equal(payload.skypeid, userId.replace(/^8:/, ""));
}

describe("@azure/communication-identity 1.3.1", () => {
  let endpoint;
  let key;
  let resourceId;
  let client;

  before(() => {
    endpoint = requiredEnv("CALLSIGN_ENDPOINT");
    key = requiredEnv("CALLSIGN_ACCESS_KEY");
    resourceId = requiredEnv("CALLSIGN_RESOURCE_ID");
    client = new CommunicationIdentityClient(connectionString(endpoint, key), {
      allowInsecureConnection: true,
    });
  });

  test("createUser returns an ACS id of this resource", async () => {
    const user = await client.createUser();
    assert.ok(
      user.communicationUserId.startsWith(`8:acs:${resourceId}_`),
      user.communicationUserId,
    );
    const other = await client.createUser();
    assert.notEqual(other.communicationUserId, user.communicationUserId);
  });

  test("createUserAndToken with chat and voip", async () => {
    const issuedAfterMs = Date.now();
    const result = await client.createUserAndToken(["chat", "voip"]);
    assert.ok(result.user.communicationUserId.startsWith(`8:acs:${resourceId}_`));
    assertToken(result, {
      scopes: ["chat", "voip"],
      minutes: 1440,
      issuedAfterMs,
      userId: result.user.communicationUserId,
    });
  });

  test("getToken, revokeTokens, deleteUser, then getToken is 404", async () => {
    const user = await client.createUser();

    const issuedAfterMs = Date.now();
    const token = await client.getToken(user, ["chat"], { tokenExpiresInMinutes: 60 });
    assertToken(token, {
      scopes: ["chat"],
      minutes: 60,
      issuedAfterMs,
      userId: user.communicationUserId,
    });

    await client.revokeTokens(user);
    const again = await client.getToken(user, ["voip.join"], { tokenExpiresInMinutes: 1440 });
    assertToken(again, {
      scopes: ["voip.join"],
      minutes: 1440,
      issuedAfterMs,
      userId: user.communicationUserId,
    });

    await client.deleteUser(user);
    await assert.rejects(client.getToken(user, ["chat"]), (err) => {
      assert.equal(err.statusCode, 404);
      assert.equal(err.code, "IdentityNotFound");
      return true;
    });
  });

  test("a lifetime outside 60..1440 minutes is a ValidationError", async () => {
    const user = await client.createUser();
    for (const minutes of [30, 1500]) {
      await assert.rejects(
        client.getToken(user, ["chat"], { tokenExpiresInMinutes: minutes }),
        (err) => {
          assert.equal(err.statusCode, 400);
          assert.equal(err.code, "ValidationError");
          return true;
        },
      );
    }
  });

  test("a wrong access key is denied", async () => {
    const wrong = new CommunicationIdentityClient(
      connectionString(endpoint, randomBytes(48).toString("base64")),
      { allowInsecureConnection: true },
    );
    await assert.rejects(wrong.createUser(), (err) => {
      assert.equal(err.statusCode, 401);
      return true;
    });
  });
});
