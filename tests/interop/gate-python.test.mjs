// Interop through the gate (docs/behaviour.md §13.2) with the MCP Python SDK's client (PyPI `mcp`,
// exact version in requirements.txt, installed in .venv by python-env.sh). python/gate_client.py
// starts from nothing but the gate's URL in front of @modelcontextprotocol/server-everything:
// discovers Doorman, registers, prints the authorization URL, which this test opens in the same
// scripted browser as the other suites, then lists tools, calls one whose progress and result
// stream (SSE) through the gate, and is refused on its next call once its tokens are revoked.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { authorizeInBrowser } from './lib/browser.mjs';
import { gateConfig, startEverything } from './lib/everything.mjs';
import { startEnvironment, withServerLogs } from './lib/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const python = path.join(here, '.venv', 'bin', 'python');
const redirectUri = 'http://127.0.0.1:33420/callback'; // nothing listens: the browser stops at it

/** The Python client as a child process whose stdout lines arrive one by one. */
function startPythonClient(gateUrl) {
  const child = spawn(python, [path.join(here, 'python', 'gate_client.py'), gateUrl, redirectUri], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    child,
    stderr: () => stderr,
    /** The next line starting with one of `prefixes` (others are skipped); fails after 30 s. */
    async next(...prefixes) {
      const timeout = new Promise((_, reject) => {
        setTimeout(() => reject(new Error(`python client: no ${prefixes} line in 30 s\n${stderr}`)), 30_000).unref();
      });
      for (;;) {
        const { value, done } = await Promise.race([lines.next(), timeout]);
        if (done) throw new Error(`python client ended before ${prefixes}\n${stderr}`);
        if (value.startsWith('ERROR ')) throw new Error(`python client: ${value}\n${stderr}`);
        const prefix = prefixes.find((p) => value.startsWith(`${p} `));
        if (prefix) return { prefix, rest: value.slice(prefix.length + 1) };
      }
    },
    send(line) {
      child.stdin.write(`${line}\n`);
    },
  };
}

describe('gate: the MCP Python SDK through Doorman to server-everything', () => {
  let everything;
  let env;
  let client;

  before(async () => {
    everything = await startEverything();
    env = await startEnvironment({ extraConfig: gateConfig(everything.url) });
  });
  after(async () => {
    client?.child.kill('SIGKILL');
    await env?.stop();
    await everything?.stop();
  });

  test('from the gate URL alone: discover, register, authorize, list tools, stream a tool result; revoked → refused', async (t) =>
    withServerLogs(t, env, async () => {
      const gateUrl = `${env.issuer}/mcp`;
      client = startPythonClient(gateUrl);

      const authorize = new URL((await client.next('AUTHORIZE')).rest);
      assert.equal(`${authorize.origin}${authorize.pathname}`, `${env.issuer}/authorize`, 'found Doorman from the gate');
      assert.equal(authorize.searchParams.get('resource'), gateUrl);
      // The challenge's scope; the SDK adds offline_access for its refresh token (SEP-2207).
      assert.deepEqual(authorize.searchParams.get('scope').split(' ').sort(), ['mcp', 'offline_access']);
      const { callback } = await authorizeInBrowser(authorize, { redirectUri });
      client.send(`CALLBACK ${callback}`);

      const result = JSON.parse((await client.next('RESULT')).rest);
      assert.ok(result.tools.includes('echo') && result.tools.includes('trigger-long-running-operation'), result.tools.join(', '));
      assert.match(result.echo, /python through the gate/);
      assert.deepEqual(result.progress, [1, 2, 3], 'every progress notification arrived');
      assert.ok(result.first_progress_before_result_ms >= 500, `streamed: ${result.first_progress_before_result_ms} ms`);
      assert.match(result.result, /Long running operation completed/);
      assert.ok(result.refresh_token, 'a refresh token to revoke');

      const revoked = await fetch(`${env.issuer}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: result.refresh_token, client_id: result.client_id }),
      });
      assert.equal(revoked.status, 200);
      const raw = await fetch(gateUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${result.access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      assert.equal(raw.status, 401, 'the revoked access token is refused at once');
      client.send('REVOKED');
      const afterRevoke = await client.next('AUTHORIZE', 'AFTER-REVOKE');
      assert.notEqual(afterRevoke.rest, 'answered', 'the revoked client is not served');
      client.child.stdin.end();
    }));
});
