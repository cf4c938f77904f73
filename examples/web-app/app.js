// A browser app on callsign's end-user front, served from another origin than callsign:
// sign in, get a token from POST /user/token, keep it fresh with the ACS SDK's
// AzureCommunicationTokenCredential, continue as a guest, delete the user.
//
// Query parameters: ?callsign=<callsign endpoint> (default http://127.0.0.1:8080) and
// ?issuer=<OIDC issuer> (default: the local server's development issuer).
import { AzureCommunicationTokenCredential } from "@azure/communication-common";

const params = new URLSearchParams(location.search);
const CALLSIGN = (params.get("callsign") || "http://127.0.0.1:8080").replace(/\/$/, "");
const ISSUER = params.get("issuer") || `${CALLSIGN}/dev/oidc`;

const $ = (id) => document.getElementById(id);
let idToken = null; // the signed-in user's ID token (none for a guest)
let credential = null; // the ACS SDK's token credential, fed by /user/token
let refreshes = 0; // calls of its refresher in this session

/** Sign-in. With a real provider, replace this with its sign-in, e.g. oidc-client-ts:
 *  `const user = await new UserManager({ authority, client_id, redirect_uri }).signinPopup();
 *   return user.id_token;` (the audience callsign expects is CALLSIGN_OIDC_AUDIENCE). */
async function signIn(user) {
  const answer = await call(`${ISSUER}/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub: user }),
  });
  return answer.id_token;
}

/** Any request; callsign's error envelope ({"error":{"code","message"}}) and a browser
 *  block (CORS, unreachable) become an Error with a message a person can act on. */
async function call(url, init = {}) {
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new Error(
      `The browser blocked the request to ${url} or could not reach it. ` +
        `Is this page's origin (${location.origin}) in callsign's CALLSIGN_CORS_ORIGINS?`,
    );
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (response.ok) return body;
  const error = body && body.error;
  let message = error ? `${response.status} ${error.code}: ${error.message}` : `${response.status} ${response.statusText}`;
  const retryAfter = response.headers.get("Retry-After");
  if (response.status === 429 && retryAfter) message += ` (Retry-After: ${retryAfter} s)`;
  throw new Error(message);
}

/** A fresh callsign token for the signed-in user (their identity is made on first call). */
async function userToken() {
  return call(`${CALLSIGN}/user/token`, {
    method: "POST",
    headers: { Authorization: `Bearer ${idToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ scopes: ["chat", "voip"], expiresInMinutes: 60 }),
  });
}

/** The ACS SDK's credential: it calls the refresher when the token nears expiry (and, with
 *  no initial token, on the first getToken). The chat and calling SDKs take it as is. */
function tokenCredential(initialToken) {
  return new AzureCommunicationTokenCredential({
    token: initialToken,
    tokenRefresher: async () => {
      const fresh = await userToken();
      refreshes += 1;
      $("refreshes").textContent = String(refreshes);
      return fresh.accessToken.token;
    },
    refreshProactively: true,
  });
}

/** A new session's credential, replacing the last one. */
function newSession(next) {
  credential?.dispose();
  credential = next;
  refreshes = 0;
  $("refreshes").textContent = "0";
}

/** What a token says: its identity, scopes and expiry (the payload, not verified). */
function show(identityId, token) {
  const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  $("identity").textContent = identityId;
  $("scopes").textContent = payload.acsScope.split(",").join(" ");
  $("expires").textContent = new Date(payload.exp * 1000).toISOString();
  $("session").hidden = false;
}

/** Runs a button's work, showing its outcome or its error, never a blank failure. */
function action(button, work) {
  $(button).addEventListener("click", async () => {
    $("error").textContent = "";
    $("status").textContent = "…";
    try {
      $("status").textContent = await work();
    } catch (error) {
      $("status").textContent = "";
      $("error").textContent = error.message;
    }
  });
}

action("sign-in", async () => {
  idToken = await signIn($("user").value);
  const first = await userToken();
  newSession(tokenCredential(first.accessToken.token));
  show(first.identity.id, (await credential.getToken()).token);
  return `Signed in as ${$("user").value}.`;
});

action("refresh", async () => {
  if (!idToken) throw new Error("Guests get a new identity each time: continue as guest again.");
  // A credential without a token asks its refresher at once: the path the SDK takes
  // when a token nears its expiry.
  credential?.dispose();
  credential = tokenCredential(undefined);
  const refreshed = await credential.getToken();
  show($("identity").textContent, refreshed.token);
  return `Refreshed: a new token until ${new Date(refreshed.expiresOnTimestamp).toISOString()}.`;
});

action("delete", async () => {
  if (!idToken) throw new Error("Guests expire on their own; there is nothing to delete.");
  await call(`${CALLSIGN}/user`, { method: "DELETE", headers: { Authorization: `Bearer ${idToken}` } });
  credential?.dispose();
  credential = null;
  idToken = null;
  $("session").hidden = true;
  return "Deleted: your identity is gone and its tokens no longer work.";
});

action("guest", async () => {
  idToken = null;
  const guest = await call(`${CALLSIGN}/guest/token`, { method: "POST" });
  newSession(new AzureCommunicationTokenCredential(guest.accessToken.token));
  show(guest.identity.id, guest.accessToken.token);
  return "Continuing as a guest.";
});

$("origins").textContent = `this page: ${location.origin}, callsign: ${new URL(CALLSIGN).origin}`;
