// Interop: the official MCP TypeScript SDK's OAuth client (`auth()` from
// @modelcontextprotocol/sdk/client/auth.js) against a real Doorman.
//
// The SDK starts from an MCP server URL only. It must find Doorman through the server's RFC 9728
// metadata, read Doorman's RFC 8414 metadata, register itself (RFC 7591), send the person to the
// authorization endpoint with PKCE and a resource indicator, exchange the code and later refresh.
// The whole sequence runs against one Doorman, then against two behind a round-robin proxy, then
// once more with `login.mode = "upstream"`: the person signs in at a real OpenID Provider
// (oidc-provider, tests/support/oidc) through its own pages, and comes back to Doorman's consent.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { auth } from '@modelcontextprotocol/sdk/client/auth.js';

import { authorizeInBrowser, formatTrace } from './lib/browser.mjs';
import { processLabel, startEnvironment, USER, withServerLogs } from './lib/harness.mjs';
import { audienceIncludes, introspect, registerResourceServer } from './lib/resource-server.mjs';
import { MemoryProvider, recordingFetch } from './lib/sdk.mjs';

/** Each way the suite runs, and what its person's browser goes through. */
const RUNS = [
  { processes: 1, login: 'password' },
  { processes: 2, login: 'password' },
  { processes: 1, login: 'upstream' },
];
const PASSWORD_TRACE = ['GET /authorize 200', 'POST /login 303', 'GET /consent 200', 'POST /consent 303'];
// /authorize goes straight to the only provider; its sign-in and consent pages; back to Doorman,
// whose page moves on to consent by itself.
const UPSTREAM_TRACE = [
  'GET /authorize 302', 'GET /auth 303', 'GET /interaction 200', 'POST /interaction 303',
  'GET /auth 303', 'GET /interaction 200', 'POST /interaction 303', 'GET /auth 303',
  'GET /login/test/callback 200', 'GET /consent 200', 'POST /consent 303',
];

for (const { processes, login } of RUNS) {
  const label = login === 'upstream' ? `${processLabel(processes)} (upstream sign-in)` : processLabel(processes);

  describe(`mcp sdk ${label}`, () => {
    let env;
    let metadata; // Doorman's RFC 8414 document, fetched by the test for its expectations
    const redirectUrl = 'http://127.0.0.1:33418/callback'; // nothing listens: the browser stops at it
    const provider = new MemoryProvider(redirectUrl);
    const sdkRequests = [];
    const fetchFn = recordingFetch(sdkRequests);
    let firstTokens;

    before(async () => {
      env = await startEnvironment({ processes, login });
      const response = await fetch(`${env.issuer}/.well-known/oauth-authorization-server`);
      assert.equal(response.status, 200);
      metadata = await response.json();
    });
    after(async () => {
      await env?.stop();
    });

    test(`mcp sdk: auth() discovers Doorman from the MCP server URL and registers dynamically ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const result = await auth(provider, { serverUrl: env.resource, fetchFn });
        assert.equal(result, 'REDIRECT');

        // Discovery went resource server → authorization server → registration endpoint.
        const resourceOrigin = new URL(env.resource).origin;
        assert.ok(
          sdkRequests.some((r) => r.startsWith(`GET ${resourceOrigin}/.well-known/oauth-protected-resource`)),
          `the SDK read the protected-resource metadata:\n${sdkRequests.join('\n')}`,
        );
        assert.ok(
          sdkRequests.includes(`GET ${env.issuer}/.well-known/oauth-authorization-server`),
          `the SDK read Doorman's metadata:\n${sdkRequests.join('\n')}`,
        );
        assert.ok(sdkRequests.includes(`POST ${metadata.registration_endpoint}`), 'the SDK registered dynamically');

        // A public client: an id, no secret, the metadata it asked for.
        const info = provider.clientInformation();
        assert.ok(info?.client_id, 'client information saved');
        assert.equal(info.client_secret, undefined, 'a public client gets no secret');
        assert.equal(info.token_endpoint_auth_method, 'none');
        assert.deepEqual(info.redirect_uris, [redirectUrl]);

        // The authorization request the SDK built: PKCE S256, the resource, the scope, our state.
        assert.equal(provider.authorizationUrls.length, 1);
        const url = provider.authorizationUrls[0];
        assert.equal(`${url.origin}${url.pathname}`, metadata.authorization_endpoint);
        const q = url.searchParams;
        assert.equal(q.get('response_type'), 'code');
        assert.equal(q.get('client_id'), info.client_id);
        assert.equal(q.get('redirect_uri'), redirectUrl);
        assert.equal(q.get('code_challenge_method'), 'S256');
        assert.match(q.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
        assert.equal(q.get('resource'), env.resource);
        assert.equal(q.get('scope'), 'mcp offline_access');
        assert.equal(q.get('state'), provider.states.at(-1));
      }));

    test(`mcp sdk: sign-in and consent, then auth() exchanges the code for tokens ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const url = provider.authorizationUrls.at(-1);
        assert.ok(url, 'needs the authorization URL of the previous test');
        const before = env.servedBy();

        const { callback, status, trace } = await authorizeInBrowser(url, { redirectUri: redirectUrl });
        // Password: sign-in page, sign-in POST (303 + session cookie), consent page, consent POST
        // (303). Upstream: the provider's pages in between, and Doorman's callback signs in.
        const steps = trace.map((s) => `${s.method} ${new URL(s.url).pathname.replace(/^\/(interaction|auth)\/.*/, '/$1')} ${s.status}`);
        assert.deepEqual(steps, login === 'upstream' ? UPSTREAM_TRACE : PASSWORD_TRACE, formatTrace(trace));
        const signsIn = trace[login === 'upstream' ? 8 : 1];
        assert.ok(
          signsIn.response.headers.getSetCookie().some((c) => c.startsWith('doorman_session=')),
          'the sign-in answer sets the session cookie',
        );
        if (login === 'upstream') {
          const toProvider = new URL(trace[1].url);
          assert.equal(toProvider.origin, new URL(env.provider.issuer).origin, 'sent to the provider');
          assert.equal(toProvider.searchParams.get('code_challenge_method'), 'S256');
          assert.ok(toProvider.searchParams.get('nonce'), 'with a nonce');
        }
        assert.equal(status, 303, 'a POSTed consent form is answered with 303');
        assert.ok(callback.searchParams.get('code'), `a code in ${callback.href}`);
        assert.equal(callback.searchParams.get('state'), provider.states.at(-1), 'state echoed');
        assert.equal(callback.searchParams.get('iss'), metadata.issuer, 'RFC 9207 iss');

        const result = await auth(provider, {
          serverUrl: env.resource,
          authorizationCode: callback.searchParams.get('code'),
          fetchFn,
        });
        assert.equal(result, 'AUTHORIZED');
        firstTokens = provider.tokens();
        assert.ok(firstTokens?.access_token, 'access token saved');
        assert.ok(firstTokens.refresh_token, 'refresh token saved (offline_access)');
        assert.equal(firstTokens.token_type.toLowerCase(), 'bearer');
        assert.ok(firstTokens.expires_in > 0);
        assert.deepEqual(firstTokens.scope.split(' ').sort(), ['mcp', 'offline_access']);

        if (processes === 2) {
          const served = env.servedBy().map((n, i) => n - before[i]);
          assert.ok(served.every((n) => n > 0), `both processes served part of this flow: ${served}`);
        }
      }));

    test(`mcp sdk: auth() with a refresh token present rotates both tokens ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        assert.ok(firstTokens, 'needs the tokens of the previous test');
        const redirectsBefore = provider.authorizationUrls.length;

        // With tokens saved and no code, this SDK version refreshes (refresh_token grant) instead of
        // starting a new authorization.
        const result = await auth(provider, { serverUrl: env.resource, fetchFn });
        assert.equal(result, 'AUTHORIZED');
        assert.equal(provider.authorizationUrls.length, redirectsBefore, 'no new authorization was needed');
        assert.ok(
          sdkRequests.filter((r) => r === `POST ${metadata.token_endpoint}`).length >= 2,
          'the SDK called the token endpoint again',
        );

        const refreshed = provider.tokens();
        assert.ok(refreshed.access_token);
        assert.ok(refreshed.refresh_token, 'a rotated refresh token is returned');
        assert.notEqual(refreshed.access_token, firstTokens.access_token, 'a new access token');
        assert.notEqual(refreshed.refresh_token, firstTokens.refresh_token, 'a new refresh token');
        assert.deepEqual(refreshed.scope.split(' ').sort(), ['mcp', 'offline_access']);
      }));

    test(`mcp sdk: the resource server's introspection sees the token, bound to the resource ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const tokens = provider.tokens();
        assert.ok(tokens && tokens !== firstTokens, 'needs the refreshed tokens of the previous test');
        const resourceServer = registerResourceServer(env);

        const answer = await introspect(metadata.introspection_endpoint, resourceServer, tokens.access_token);
        assert.equal(answer.active, true, JSON.stringify(answer));
        assert.ok(audienceIncludes(answer.aud, env.resource), `aud ${JSON.stringify(answer.aud)} is ${env.resource}`);
        assert.equal(answer.client_id, provider.clientInformation().client_id);
        if (login === 'upstream') {
          // The provider's subject, scoped by provider, and the provider itself.
          assert.equal(answer.sub, `test:${USER.username}`);
          assert.equal(answer.provider, 'test');
          assert.equal(answer.username, 'Alice Example');
        } else {
          assert.equal(answer.sub, USER.username);
        }
        assert.equal(answer.iss, metadata.issuer);
        assert.ok(answer.scope.split(' ').includes('mcp'), `scope ${answer.scope}`);
        assert.ok(Number.isInteger(answer.exp) && Number.isInteger(answer.iat) && answer.exp > answer.iat);

        // The refresh token that rotation replaced is no longer active.
        const old = await introspect(metadata.introspection_endpoint, resourceServer, firstTokens.refresh_token);
        assert.equal(old.active, false, `rotated-out refresh token: ${JSON.stringify(old)}`);
      }));

    if (processes === 2) {
      test(`mcp sdk: both Doorman processes served requests ${label}`, () => {
        const served = env.servedBy();
        assert.ok(served[0] > 0 && served[1] > 0, `requests per process: ${served}`);
      });
    }
  });
}
