// What an MCP server (a resource server) does with Doorman, with plain fetch: register itself as a
// confidential client for introspection, and introspect bearer tokens (RFC 7662).

import assert from 'node:assert/strict';

/** Registers a confidential client that may only use client_credentials and introspection. */
export async function registerResourceServer(registrationEndpoint, name = 'interop resource server') {
  const response = await fetch(registrationEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({
      client_name: name,
      grant_types: ['client_credentials'],
      token_endpoint_auth_method: 'client_secret_basic',
    }),
  });
  const body = await response.json();
  assert.equal(response.status, 201, `registration of the resource server: ${JSON.stringify(body)}`);
  assert.ok(body.client_id && body.client_secret, 'a confidential client gets a client_id and a client_secret');
  return body;
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
