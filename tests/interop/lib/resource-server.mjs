// What an MCP server (a resource server) does with Doorman, with plain fetch: introspect bearer
// tokens (RFC 7662) with the credentials the operator registered it with.

import assert from 'node:assert/strict';

/**
 * The resource server's client, registered by the operator (`doorman clients register
 * --resource-server`): only the operator's resource servers may introspect.
 */
export function registerResourceServer(env, name = 'interop resource server', resources = [env.resource]) {
  const args = ['--name', name, '--resource-server', ...resources.flatMap((r) => ['--resource', r])];
  const client = env.operatorClient(args);
  assert.ok(client.client_id && client.client_secret, 'a resource server gets a client_id and a client_secret');
  return client;
}

/** client_secret_basic: both parts form-urlencoded, then base64 (RFC 6749 §2.3.1). */
export function basicAuth(clientId, clientSecret) {
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`;
}

/** POST /introspect as the resource server; returns the parsed RFC 7662 answer. */
export async function introspect(introspectionEndpoint, resourceServer, token) {
  const response = await fetch(introspectionEndpoint, {
    method: 'POST',
    headers: {
      authorization: basicAuth(resourceServer.client_id, resourceServer.client_secret),
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body: new URLSearchParams({ token }),
  });
  const text = await response.text();
  assert.equal(response.status, 200, `introspection answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

/** True when `aud` (a string or an array, RFC 7662 §2.2) names `resource`. */
export function audienceIncludes(aud, resource) {
  return Array.isArray(aud) ? aud.includes(resource) : aud === resource;
}
