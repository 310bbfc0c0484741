// Interop: the official MCP TypeScript SDK's OAuth client identifying itself with a Client ID
// Metadata Document (docs/behaviour.md §12) instead of registering.
//
// The provider names a `clientMetadataUrl`; the SDK uses it as its client_id when Doorman's
// metadata says `client_id_metadata_document_supported: true` (and it insists on an https URL
// with a path). The document is served over https on loopback with the test certificate of
// tests/fixtures/tls/, which Doorman trusts through `cimd.ca_file`. The whole sequence —
// discovery, authorization with the URL as client_id, consent, code exchange, refresh — runs
// against one Doorman, then two behind a round-robin proxy sharing one Redis, where the document
// must still be fetched only once.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { auth } from '@modelcontextprotocol/sdk/client/auth.js';

import { authorizeInBrowser, formatTrace } from './lib/browser.mjs';
import { processLabel, repoRoot, startEnvironment, withServerLogs } from './lib/harness.mjs';
import { MemoryProvider, recordingFetch } from './lib/sdk.mjs';

const tls = path.join(repoRoot, 'tests', 'fixtures', 'tls');

/** An https server on 127.0.0.1 serving one JSON document at `/mcp-client.json`; counts fetches. */
async function documentServer() {
  const fetches = [];
  let document;
  const server = https.createServer(
    { cert: readFileSync(path.join(tls, 'server.pem')), key: readFileSync(path.join(tls, 'server.key')) },
    (req, res) => {
      fetches.push({ path: req.url, accept: req.headers.accept });
      if (req.method === 'GET' && req.url === '/mcp-client.json' && document) {
        const body = JSON.stringify(document);
        res.writeHead(200, {
          'content-type': 'application/json; charset=utf-8',
          'cache-control': 'public, max-age=600',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    },
  );
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `https://127.0.0.1:${server.address().port}/mcp-client.json`;
  return {
    url,
    fetches,
    serve(doc) {
      document = doc;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

for (const processes of [1, 2]) {
  const label = processLabel(processes);

  describe(`mcp sdk with a metadata document ${label}`, () => {
    let env;
    let docs;
    let metadata;
    let provider;
    const redirectUrl = 'http://127.0.0.1:33419/callback'; // nothing listens: the browser stops at it
    const sdkRequests = [];
    const fetchFn = recordingFetch(sdkRequests);
    let firstTokens;

    before(async () => {
      docs = await documentServer();
      env = await startEnvironment({
        processes,
        extraConfig: `
[cimd]
allow_hosts = ["127.0.0.1"]
ca_file = ${JSON.stringify(path.join(tls, 'ca.pem'))}
`,
      });
      provider = new MemoryProvider(redirectUrl, { clientMetadataUrl: docs.url });
      docs.serve({
        client_id: docs.url,
        client_name: 'Doorman interop (MCP TypeScript SDK, metadata document)',
        client_uri: 'https://github.com/modelcontextprotocol/typescript-sdk',
        redirect_uris: [redirectUrl],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      });
      const response = await fetch(`${env.issuer}/.well-known/oauth-authorization-server`);
      metadata = await response.json();
    });
    after(async () => {
      await env?.stop();
      await docs?.close();
    });

    test(`mcp sdk: auth() uses the document URL as its client_id instead of registering ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        assert.equal(metadata.client_id_metadata_document_supported, true);
        assert.ok(metadata.token_endpoint_auth_methods_supported.includes('none'));

        const result = await auth(provider, { serverUrl: env.resource, fetchFn });

        assert.equal(result, 'REDIRECT');
        assert.ok(!sdkRequests.some((r) => r.startsWith('POST ') && r.includes('/register')), sdkRequests.join('\n'));
        assert.equal(provider.registrations, 0, 'no dynamic registration');
        assert.equal(provider.clientInformation()?.client_id, docs.url);
        const url = provider.authorizationUrls.at(-1);
        assert.equal(url.searchParams.get('client_id'), docs.url);
        assert.equal(url.searchParams.get('redirect_uri'), redirectUrl);
        assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
      }));

    test(`mcp sdk: sign-in and consent, then auth() exchanges the code as the document's client ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const url = provider.authorizationUrls.at(-1);
        assert.ok(url, 'needs the authorization URL of the previous test');

        const { callback, trace } = await authorizeInBrowser(url, { redirectUri: redirectUrl });
        assert.deepEqual(
          trace.map((s) => `${s.method} ${new URL(s.url).pathname} ${s.status}`),
          ['GET /authorize 200', 'POST /login 303', 'GET /consent 200', 'POST /consent 303'],
          formatTrace(trace),
        );
        assert.equal(callback.searchParams.get('state'), provider.states.at(-1));
        assert.equal(callback.searchParams.get('iss'), metadata.issuer);

        const result = await auth(provider, {
          serverUrl: env.resource,
          authorizationCode: callback.searchParams.get('code'),
          fetchFn,
        });
        assert.equal(result, 'AUTHORIZED');
        firstTokens = provider.tokens();
        assert.ok(firstTokens?.access_token);
        assert.ok(firstTokens.refresh_token, 'a refresh token for a document that lists refresh_token');
      }));

    test(`mcp sdk: auth() refreshes as the document's client ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        assert.ok(firstTokens, 'needs the tokens of the previous test');

        const result = await auth(provider, { serverUrl: env.resource, fetchFn });

        assert.equal(result, 'AUTHORIZED');
        const refreshed = provider.tokens();
        assert.notEqual(refreshed.access_token, firstTokens.access_token);
        assert.notEqual(refreshed.refresh_token, firstTokens.refresh_token);
      }));

    test(`mcp sdk: Doorman fetched the document once, with Accept: application/json ${label}`, () => {
      const fetched = docs.fetches.filter((f) => f.path === '/mcp-client.json');
      assert.equal(fetched.length, 1, `every process used the one cached copy: ${JSON.stringify(docs.fetches)}`);
      assert.equal(fetched[0].accept, 'application/json');
      if (processes === 2) {
        const served = env.servedBy();
        assert.ok(served[0] > 0 && served[1] > 0, `requests per process: ${served}`);
      }
    });
  });
}
