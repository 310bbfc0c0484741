// Interop: a real MCP server that nobody here wrote — FastMCP (PyPI, tests/interop/requirements.txt)
// with RemoteAuthProvider — takes Doorman as its authorization server, twice:
//   1. JWTVerifier(jwks_uri, issuer, audience): Doorman's JWT access tokens, checked by signature;
//   2. IntrospectionTokenVerifier: opaque tokens (tokens.format = "opaque"), checked at
//      Doorman's /introspect with a resource-server client the operator registered.
// Against each, two MCP clients start from the server URL alone: the MCP TypeScript SDK and
// FastMCP's own Python client. Each discovers Doorman from the server's 401 (RFC 9728), registers
// (RFC 7591), authorizes (PKCE, resource), calls a tool and refreshes; a token Doorman issued for
// another resource is refused by the server.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

import { authorizeInBrowser } from './lib/browser.mjs';
import { startEnvironment, USER, withServerLogs } from './lib/harness.mjs';
import { basicAuth } from './lib/resource-server.mjs';
import { MemoryProvider } from './lib/sdk.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const python = path.join(here, '.venv', 'bin', 'python');
// Short-lived access tokens, so FastMCP's client has to refresh within the test.
const ACCESS_TTL = 4;

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A child process whose output is kept for failure messages; killed by `stop`. */
function startPython(args) {
  const child = spawn(python, args, { cwd: here, stdio: ['ignore', 'pipe', 'pipe'] });
  child.output = [];
  child.stderr.on('data', (d) => child.output.push(String(d)));
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  process.on('exit', () => child.kill('SIGKILL'));
  return child;
}

/** Starts the FastMCP server on a free port; resolves once it answers 401 on /mcp. */
async function startFastMcp(issuer, port, verifierArgs) {
  const child = startPython(['python/server.py', '--port', String(port), '--issuer', issuer, ...verifierArgs]);
  child.stdout.on('data', (d) => child.output.push(String(d)));
  const url = `http://127.0.0.1:${port}/mcp`;
  for (let i = 0; i < 200; i += 1) {
    if (child.exitCode !== null) throw new Error(`FastMCP server exited:\n${child.output.join('')}`);
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      if (res.status === 401) return { url, child, stop: () => child.kill('SIGTERM') };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`FastMCP server did not start:\n${child.output.join('')}`);
}

/** An MCP initialize request with `token`: the server's status code. */
async function statusWith(url, token) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '1' } },
    }),
  });
  await res.body?.cancel();
  return res.status;
}

/** A client_credentials token of the operator's resource-server client for `resource`. */
async function clientCredentials(env, client, resource) {
  const res = await fetch(`${env.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: basicAuth(client.client_id, client.client_secret),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'mcp', resource }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

/** The MCP TypeScript SDK: connect (401 → discovery → registration → authorization URL), the
 *  person's browser, finishAuth, a tool call; then a refresh and another call. */
async function typescriptClient(url, jwt) {
  const redirectUrl = 'http://127.0.0.1:33419/callback'; // nothing listens: the browser stops at it
  const provider = new MemoryProvider(redirectUrl);
  const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const client = new Client({ name: 'doorman-interop', version: '1.0.0' });
  await assert.rejects(client.connect(first), UnauthorizedError, 'the first connect needs authorization');
  assert.equal(provider.registrations, 1, 'registered dynamically');
  const authorizeUrl = provider.authorizationUrls.at(-1);
  assert.equal(authorizeUrl.searchParams.get('resource'), url, 'the resource from the server metadata');

  const { callback } = await authorizeInBrowser(authorizeUrl, { redirectUri: redirectUrl });
  await first.finishAuth(callback.searchParams.get('code'));
  const tokens = provider.tokens();
  if (jwt) {
    const claims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url'));
    assert.equal(claims.aud, url, 'aud is the resource exactly as sent');
    assert.equal(claims.sub, USER.username);
  } else {
    assert.ok(!tokens.access_token.includes('.'), 'an opaque token');
  }

  const call = async () => {
    const c = new Client({ name: 'doorman-interop', version: '1.0.0' });
    await c.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
    const result = await c.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
    await c.close();
    return result;
  };
  const result = await call();
  assert.equal(result.isError ?? false, false, JSON.stringify(result));
  assert.equal(result.content[0].text, '5');

  // With tokens saved, auth() refreshes (refresh_token grant) instead of a new authorization.
  assert.equal(await auth(provider, { serverUrl: url }), 'AUTHORIZED');
  const refreshed = provider.tokens();
  assert.notEqual(refreshed.access_token, tokens.access_token, 'a new access token');
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'a rotated refresh token');
  assert.equal((await call()).content[0].text, '5', 'the refreshed token is accepted');
  assert.equal(provider.authorizationUrls.length, 1, 'one authorization in all');
}

/** FastMCP's own client (python/client.py): the node test plays the person's browser. */
async function pythonClient(url) {
  const child = startPython(['python/client.py', url, String(ACCESS_TTL + 2)]);
  const lines = createInterface({ input: child.stdout });
  const calls = [];
  try {
    for await (const line of lines) {
      const message = JSON.parse(line);
      if (message.authorize) {
        const authorizeUrl = new URL(message.authorize);
        assert.equal(authorizeUrl.searchParams.get('resource'), url, 'the resource from the server metadata');
        const redirectUri = authorizeUrl.searchParams.get('redirect_uri');
        const { callback } = await authorizeInBrowser(authorizeUrl, { redirectUri });
        // Deliver the answer to the client's own callback server, as the browser would.
        let delivered;
        for (let i = 0; i < 100 && !delivered; i += 1) {
          delivered = await fetch(callback).catch(() => undefined);
          if (!delivered) await sleep(100);
        }
        assert.ok(delivered?.ok, `the client's callback answered ${delivered?.status}`);
      } else if (message.call) {
        calls.push(message);
      }
    }
  } finally {
    child.kill('SIGTERM');
  }
  const { code } = await child.exited;
  assert.equal(code, 0, `FastMCP client failed:\n${child.output.join('')}`);
  assert.equal(calls.length, 2, child.output.join(''));
  assert.deepEqual(calls.map((c) => c.result), [3, 4]);
  assert.equal(calls[1].authorizations, 1, 'refreshed, not authorized again');
  assert.notEqual(calls[1].access_token, calls[0].access_token, 'the expired access token was refreshed');
  assert.notEqual(calls[1].refresh_token, calls[0].refresh_token, 'the refresh token rotated');
  return calls;
}

const SUITES = [
  { name: 'JWTVerifier (JWT access tokens, jwks_uri)', jwt: true },
  { name: 'IntrospectionTokenVerifier (opaque tokens, /introspect)', jwt: false },
];

for (const { name, jwt } of SUITES) {
  describe(`FastMCP RemoteAuthProvider + ${name}`, () => {
    let env;
    let server;
    let minter; // the operator's client_credentials client, to mint tokens for other resources

    before(async () => {
      const format = jwt ? 'jwt' : 'opaque';
      env = await startEnvironment({ tokens: `format = "${format}"\naccess_ttl = ${ACCESS_TTL}` });
      const port = await freePort();
      const url = `http://127.0.0.1:${port}/mcp`;
      let verifierArgs = ['--verifier', 'jwt'];
      if (!jwt) {
        // The recipe of the README: a resource-server client for exactly this resource.
        const rs = env.operatorClient(['--name', 'FastMCP server', '--resource-server', '--resource', url]);
        verifierArgs = ['--verifier', 'introspection', '--client-id', rs.client_id, '--client-secret', rs.client_secret];
      }
      server = await startFastMcp(env.issuer, port, verifierArgs);
      minter = env.operatorClient(['--name', 'minter', '--resource-server']);
    });

    after(async () => {
      server?.stop();
      await env?.stop();
    });

    test('the MCP TypeScript SDK discovers Doorman, registers, authorizes, calls a tool, refreshes', async (t) =>
      withServerLogs(t, env, () => typescriptClient(server.url, jwt)));

    test("FastMCP's own client discovers Doorman, registers, authorizes, calls a tool, refreshes", async (t) =>
      withServerLogs(t, env, () => pythonClient(server.url)));

    test('a token for another resource is refused; one for this resource is accepted', async (t) =>
      withServerLogs(t, env, async () => {
        const other = await clientCredentials(env, minter, 'https://other.example/mcp');
        assert.equal(await statusWith(server.url, other), 401, 'another audience');
        const mine = await clientCredentials(env, minter, server.url);
        assert.equal(await statusWith(server.url, mine), 200, 'this audience');
      }));
  });
}
