// Interop through the gate (docs/behaviour.md §13.2): the MCP TypeScript SDK's client
// (Client + StreamableHTTPClientTransport with an OAuth provider) starts from nothing but the
// gate's URL, in front of @modelcontextprotocol/server-everything on loopback. It discovers
// Doorman from the 401 challenge, registers, authorizes (the browser step driven as in the other
// suites), lists tools, calls one whose progress and result stream (SSE) through the gate, steps
// up on 403 insufficient_scope for a tool that needs more scope, and is refused on its next call
// once its token is revoked.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { authorizeInBrowser } from './lib/browser.mjs';
import { gateConfig, startEverything } from './lib/everything.mjs';
import { startEnvironment, withServerLogs } from './lib/harness.mjs';
import { MemoryProvider, recordingFetch } from './lib/sdk.mjs';

const redirectUrl = 'http://127.0.0.1:33419/callback'; // nothing listens: the browser stops at it

/** A connected SDK client on a fresh transport with `provider`. */
async function connect(gateUrl, provider, fetchFn) {
  const transport = new StreamableHTTPClientTransport(new URL(gateUrl), { authProvider: provider, fetch: fetchFn });
  const client = new Client({ name: 'doorman-interop-gate', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

/** The browser step for the provider's last authorization URL; returns the code. */
async function approve(provider) {
  const { callback, trace } = await authorizeInBrowser(provider.authorizationUrls.at(-1), { redirectUri: redirectUrl });
  const code = callback.searchParams.get('code');
  assert.ok(code, `a code came back: ${callback} after ${trace.length} steps`);
  return code;
}

describe('gate: the MCP TypeScript SDK through Doorman to server-everything', () => {
  let everything;
  let env;
  let gateUrl;
  let first; // { provider, client } of the first test, revoked in the last

  before(async () => {
    everything = await startEverything();
    env = await startEnvironment({ extraConfig: gateConfig(everything.url) });
    gateUrl = `${env.issuer}/mcp`;
  });
  after(async () => {
    await first?.client.close().catch(() => {});
    await env?.stop();
    await everything?.stop();
  });

  test('from the gate URL alone: discover, register, authorize, list tools, call tools, stream progress (SSE)', async (t) =>
    withServerLogs(t, env, async () => {
      const requests = [];
      const fetchFn = recordingFetch(requests);
      const provider = new MemoryProvider(redirectUrl);
      const transport = new StreamableHTTPClientTransport(new URL(gateUrl), { authProvider: provider, fetch: fetchFn });
      const client = new Client({ name: 'doorman-interop-gate', version: '1.0.0' });

      await assert.rejects(client.connect(transport), UnauthorizedError, 'the first call is challenged');

      assert.ok(
        requests.includes(`GET ${env.issuer}/.well-known/oauth-protected-resource/mcp`),
        `the SDK read the gate's RFC 9728 metadata:\n${requests.join('\n')}`,
      );
      assert.ok(requests.includes(`POST ${env.issuer}/register`), `the SDK registered:\n${requests.join('\n')}`);
      const authorization = provider.authorizationUrls.at(-1);
      assert.equal(authorization.searchParams.get('resource'), gateUrl, 'the token is asked for the gate URL');
      assert.equal(authorization.searchParams.get('scope'), 'mcp', 'the scope of the challenge');

      await transport.finishAuth(await approve(provider));
      const { client: connected } = await connect(gateUrl, provider, fetchFn);
      first = { provider, client: connected };

      const { tools } = await connected.listTools();
      const names = tools.map((tool) => tool.name);
      assert.ok(names.includes('echo') && names.includes('trigger-long-running-operation'), names.join(', '));
      const echoed = await connected.callTool({ name: 'echo', arguments: { message: 'through the gate' } });
      assert.match(echoed.content[0].text, /through the gate/);

      const progress = [];
      const result = await connected.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 1.5, steps: 3 } },
        undefined,
        { onprogress: (p) => progress.push({ ...p, at: Date.now() }) },
      );
      const done = Date.now();
      assert.match(result.content[0].text, /Long running operation completed/);
      assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3], 'every progress notification arrived');
      assert.ok(done - progress[0].at >= 500, `the first progress came ${done - progress[0].at} ms before the result: streamed, not buffered`);
    }));

  test('403 insufficient_scope for a tool that needs more, a step-up in one round, then the call passes', async (t) =>
    withServerLogs(t, env, async () => {
      // A client registered for more than it first asks for (and without refresh tokens, so the
      // SDK's step-up authorizes again instead of refreshing, which cannot widen a grant).
      const registered = await fetch(`${env.issuer}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_name: 'Doorman interop (step-up)',
          redirect_uris: [redirectUrl],
          grant_types: ['authorization_code'],
          token_endpoint_auth_method: 'none',
          scope: 'mcp admin',
        }),
      });
      assert.equal(registered.status, 201);
      const provider = new MemoryProvider(redirectUrl);
      provider.saveClientInformation(await registered.json());
      const transport = new StreamableHTTPClientTransport(new URL(gateUrl), { authProvider: provider });
      await assert.rejects(new Client({ name: 'x', version: '1' }).connect(transport), UnauthorizedError);
      await transport.finishAuth(await approve(provider));
      const { client, transport: live } = await connect(gateUrl, provider);
      assert.equal(provider.tokens().scope, 'mcp', 'a narrow token first');

      const call = { name: 'get-env', arguments: {} };
      await assert.rejects(client.callTool(call), UnauthorizedError, 'the 403 sends the SDK to authorize again');
      const stepUp = provider.authorizationUrls.at(-1);
      assert.equal(stepUp.searchParams.get('scope'), 'mcp admin', 'every scope needed, named by the 403');
      await live.finishAuth(await approve(provider));
      assert.equal(provider.tokens().scope, 'mcp admin');

      const result = await client.callTool(call);
      assert.ok(result.content[0].text.length > 0, 'get-env answered');
      await client.close();
    }));

  test('a revoked token is refused on its next call', async (t) =>
    withServerLogs(t, env, async () => {
      const { provider, client } = first;
      const { access_token: accessToken, refresh_token: refreshToken } = provider.tokens();
      assert.ok(refreshToken, 'the first client has a refresh token');
      const before = await client.listTools();
      assert.ok(before.tools.length > 0);

      // Revoking the refresh token revokes its family, the access token included (RFC 7009 §2.1).
      const revoked = await fetch(`${env.issuer}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: refreshToken, client_id: provider.clientInformation().client_id }),
      });
      assert.equal(revoked.status, 200);

      const raw = await fetch(gateUrl, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${accessToken}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      assert.equal(raw.status, 401);
      assert.match(raw.headers.get('www-authenticate'), /error="invalid_token", error_description="The access token has been revoked\."/);
      // The SDK's next call is refused; its refresh (of a revoked family) is refused too, so it
      // cannot go on without the person.
      const refused = await client.listTools().then(() => null, (e) => e);
      assert.ok(refused, 'the SDK could not go on with a revoked token');
      t.diagnostic(`the SDK's call after revocation failed with ${refused.name}: ${refused.message}`);
    }));
});
