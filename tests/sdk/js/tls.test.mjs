// The official JS SDK built from a connection string against the local server over
// HTTPS (scripts/test starts `callsign-local --tls` and trusts its self-signed
// certificate with NODE_EXTRA_CA_CERTS): create, issue, revoke and delete.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CommunicationIdentityClient } from "@azure/communication-identity";

const connectionString = process.env.CALLSIGN_CONNECTION_STRING;

test("the client works from a connection string over HTTPS", async () => {
  assert.ok(connectionString?.startsWith("endpoint=https://"), "CALLSIGN_CONNECTION_STRING: run through scripts/test");
  const client = new CommunicationIdentityClient(connectionString);
  const { user, token } = await client.createUserAndToken(["chat"]);
  assert.match(user.communicationUserId, /^8:acs:/);
  assert.ok(token);
  const again = await client.getToken(user, ["voip"]);
  assert.ok(again.token);
  await client.revokeTokens(user);
  await client.deleteUser(user);
  await assert.rejects(client.getToken(user, ["chat"]), (error) => error.statusCode === 404);
});
