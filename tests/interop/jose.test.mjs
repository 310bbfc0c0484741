// Interop: `jose` (npm), an independent JOSE implementation, verifies Doorman's RFC 9068 access
// tokens against its /jwks.json exactly as a resource server would (typ at+jwt, iss, aud, exp),
// before and after `doorman keys rotate` — with two Doorman processes behind a round-robin proxy,
// so both must sign with the same keys and both must pick up the rotation without a restart.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';

import { startEnvironment, withServerLogs } from './lib/harness.mjs';

/** A client_credentials token for `resource`, as the operator's resource-server client gets it. */
async function tokenFor(env, client, resource) {
  const res = await fetch(`${env.issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'mcp', resource }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

describe('jose verifies Doorman JWT access tokens (2 processes)', () => {
  let env;
  let client;
  let jwksUri;
  // Every verification fetches the key set afresh, as a new resource server would.
  const verify = (token, audience) =>
    jose.jwtVerify(token, jose.createRemoteJWKSet(new URL(jwksUri), { cacheMaxAge: 0, cooldownDuration: 0 }), {
      issuer: env.issuer,
      audience,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });

  before(async () => {
    // The rotated key signs at once here and each process reads the key set every second.
    env = await startEnvironment({ processes: 2, tokens: 'rotation_delay = 0\nkey_refresh = 1' });
    client = env.operatorClient(['--name', 'jose resource server', '--resource-server']);
    const meta = await (await fetch(`${env.issuer}/.well-known/oauth-authorization-server`)).json();
    jwksUri = meta.jwks_uri;
    assert.equal(jwksUri, `${env.issuer}/jwks.json`);
  });

  after(async () => {
    await env?.stop();
  });

  test('tokens from either process verify; aud is the resource exactly as sent', async (t) =>
    withServerLogs(t, env, async () => {
      const resource = env.resource.replace(/\/mcp$/, ''); // http://127.0.0.1:port, no slash
      for (let i = 0; i < 2; i += 1) {
        const token = await tokenFor(env, client, resource);
        const { payload, protectedHeader } = await verify(token, resource);
        assert.equal(protectedHeader.typ, 'at+jwt');
        assert.equal(protectedHeader.alg, 'ES256');
        assert.equal(payload.aud, resource);
        assert.equal(payload.client_id, client.client_id);
        assert.equal(payload.sub, client.client_id);
        assert.equal(payload.scope, 'mcp');
        assert.ok(payload.jti && payload.exp > payload.iat);
      }
      const other = await tokenFor(env, client, 'https://other.example/mcp');
      await assert.rejects(verify(other, resource), /aud/, 'a token for another resource is refused');
    }));

  test('after `doorman keys rotate`: old tokens still verify, new tokens carry the new kid', async (t) =>
    withServerLogs(t, env, async () => {
      const resource = env.resource;
      const before = await tokenFor(env, client, resource);
      const oldKid = jose.decodeProtectedHeader(before).kid;

      const printed = env.admin(['keys', 'rotate']);
      const newKid = printed.match(/published (\S+);/)?.[1];
      assert.ok(newKid && newKid !== oldKid, printed);
      // Both processes read the key set again within key_refresh.
      await new Promise((resolve) => setTimeout(resolve, 2100));

      const keys = (await (await fetch(jwksUri)).json()).keys.map((k) => k.kid);
      assert.deepEqual(new Set(keys), new Set([oldKid, newKid]), 'both keys published');
      for (let i = 0; i < 2; i += 1) {
        const after = await tokenFor(env, client, resource);
        assert.equal(jose.decodeProtectedHeader(after).kid, newKid, 'each process signs with the new key');
        assert.equal((await verify(after, resource)).payload.aud, resource);
      }
      assert.equal((await verify(before, resource)).protectedHeader.kid, oldKid, 'the old token still verifies');
    }));
});
