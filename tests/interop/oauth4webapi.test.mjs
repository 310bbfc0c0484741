// Interop: oauth4webapi, a strict, spec-checking OAuth 2 client library, against a real Doorman.
//
// oauth4webapi validates every response it processes (issuer of the metadata, `iss` and `state`
// in the authorization response, content types, JSON shapes, token types), so passing here means
// Doorman's answers are the ones the RFCs describe, not just answers our own tests accept.
// Besides the happy path it checks the refusals OAuth 2.1 asks for, each of which must be
// `invalid_grant`: a replayed code (which also revokes what the code gave), a wrong
// `code_verifier`, a refresh token that rotation replaced, and a revoked refresh token.
// The whole sequence runs against one Doorman, then against two behind a round-robin proxy.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import * as oauth from 'oauth4webapi';

import { authorizeInBrowser, formatTrace } from './lib/browser.mjs';
import { processLabel, startEnvironment, USER, withServerLogs } from './lib/harness.mjs';
import { audienceIncludes, registerResourceServer } from './lib/resource-server.mjs';

// Doorman runs on http://127.0.0.1 here; oauth4webapi refuses plain http unless told otherwise.
const insecure = { [oauth.allowInsecureRequests]: true };

const REDIRECT_URI = 'http://127.0.0.1:47615/callback'; // nothing listens: the browser stops at it
const SCOPE = 'mcp offline_access';

/** Asserts that `promise` rejects with an OAuth error response `error` = `code` (status 400). */
async function assertOAuthError(promise, code, what) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof oauth.ResponseBodyError, `${what}: expected an OAuth error response, got ${err?.stack ?? err}`);
    assert.equal(err.error, code, `${what}: error ${JSON.stringify(err.cause)}`);
    assert.equal(err.status, 400, `${what}: status`);
    return true;
  });
}

for (const processes of [1, 2]) {
  const label = processLabel(processes);

  describe(`oauth4webapi ${label}`, () => {
    let env;
    let as; // validated authorization server metadata
    let resourceMetadata; // validated protected resource metadata
    let client; // the public client (token_endpoint_auth_method none)
    let resourceServer; // a confidential client that introspects, { client, auth }

    before(async () => {
      env = await startEnvironment({ processes });
    });
    after(async () => {
      await env?.stop();
    });

    /** Registers a public client through oauth4webapi's RFC 7591 helpers. */
    async function registerPublicClient(name) {
      const response = await oauth.dynamicClientRegistrationRequest(
        as,
        {
          client_name: name,
          redirect_uris: [REDIRECT_URI],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'none',
          scope: SCOPE,
        },
        insecure,
      );
      return oauth.processDynamicClientRegistrationResponse(response);
    }

    /**
     * One authorization with PKCE: builds the request, plays the browser (a fresh one, so the
     * person signs in again) and validates the authorization response strictly (state and iss).
     * Returns { params, codeVerifier, trace, status }.
     */
    async function authorize({ forClient = client, decision = 'approve' } = {}) {
      const codeVerifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const url = new URL(as.authorization_endpoint);
      url.search = new URLSearchParams({
        client_id: forClient.client_id,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: SCOPE,
        state,
        code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        resource: env.resource,
      }).toString();

      const { callback, status, trace } = await authorizeInBrowser(url, { redirectUri: REDIRECT_URI, decision });
      const params = oauth.validateAuthResponse(as, forClient, callback, state);
      return { params, codeVerifier, trace, status };
    }

    /** authorization_code grant; resolves with the raw Response (not yet processed). */
    function exchange(params, codeVerifier, forClient = client) {
      return oauth.authorizationCodeGrantRequest(as, forClient, oauth.None(), params, REDIRECT_URI, codeVerifier, {
        additionalParameters: { resource: env.resource },
        ...insecure,
      });
    }

    /** refresh_token grant, processed; rejects with ResponseBodyError on an error response. */
    async function refresh(refreshToken) {
      const response = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, insecure);
      return oauth.processRefreshTokenResponse(as, client, response);
    }

    /** Introspection by the resource server, processed by oauth4webapi. */
    async function introspect(token) {
      const response = await oauth.introspectionRequest(as, resourceServer.client, resourceServer.auth, token, insecure);
      return oauth.processIntrospectionResponse(as, resourceServer.client, response);
    }

    /** A complete, successful authorization: code → processed token response. */
    async function freshTokens() {
      const { params, codeVerifier } = await authorize();
      return oauth.processAuthorizationCodeResponse(as, client, await exchange(params, codeVerifier));
    }

    test(`oauth4webapi: discovery validates Doorman's metadata and the resource's metadata ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const issuer = new URL(env.issuer);
        // RFC 8414 location.
        as = await oauth.processDiscoveryResponse(
          issuer,
          await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
        );
        // The OpenID Connect location, which some clients try first, must carry the same document.
        const viaOidc = await oauth.processDiscoveryResponse(
          issuer,
          await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
        );
        assert.deepEqual(viaOidc, as);

        assert.equal(as.issuer, env.issuer);
        assert.equal(as.authorization_response_iss_parameter_supported, true);
        assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
        assert.ok(as.token_endpoint_auth_methods_supported.includes('none'));
        for (const endpoint of ['registration_endpoint', 'revocation_endpoint', 'introspection_endpoint']) {
          assert.ok(as[endpoint]?.startsWith(`${env.issuer}/`), `${endpoint}: ${as[endpoint]}`);
        }

        // RFC 9728: the MCP server names Doorman as its authorization server.
        const resource = new URL(env.resource);
        resourceMetadata = await oauth.processResourceDiscoveryResponse(
          resource,
          await oauth.resourceDiscoveryRequest(resource, insecure),
        );
        assert.deepEqual(resourceMetadata.authorization_servers, [as.issuer]);
      }));

    test(`oauth4webapi: dynamic registration of a public and a confidential client ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        assert.ok(as, 'needs the metadata of the previous test');
        client = await registerPublicClient('Doorman interop (oauth4webapi)');
        assert.ok(client.client_id);
        assert.equal(client.client_secret, undefined, 'a public client gets no secret');
        assert.equal(client.token_endpoint_auth_method, 'none');
        assert.deepEqual(client.redirect_uris, [REDIRECT_URI]);

        // The MCP server is registered by the operator, as a resource server that introspects
        // (an open registration may not ask for client_credentials).
        const refused = await oauth.dynamicClientRegistrationRequest(
          as,
          { client_name: 'self-service minter', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic' },
          insecure,
        );
        assert.equal(refused.status, 400, 'open registration refuses client_credentials');
        assert.equal((await refused.json()).error, 'invalid_client_metadata');
        const rs = registerResourceServer(env, 'Doorman interop resource server', []);
        resourceServer = { client: { client_id: rs.client_id }, auth: oauth.ClientSecretBasic(rs.client_secret) };
      }));

    test(`oauth4webapi: authorization code with PKCE, strict response validation, refresh ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        assert.ok(client && resourceServer, 'needs the clients of the previous test');
        const before = env.servedBy();
        const logStart = env.proxyLog().length;

        const { params, codeVerifier, trace, status } = await authorize();
        assert.deepEqual(
          trace.map((s) => `${s.method} ${new URL(s.url).pathname} ${s.status}`),
          ['GET /authorize 200', 'POST /login 303', 'GET /consent 200', 'POST /consent 303'],
          formatTrace(trace),
        );
        assert.equal(status, 303);
        assert.equal(params.get('iss'), as.issuer);

        const tokenResponse = await exchange(params, codeVerifier);
        assert.equal(tokenResponse.headers.get('cache-control'), 'no-store');
        assert.equal(tokenResponse.headers.get('pragma'), 'no-cache');
        const tokens = await oauth.processAuthorizationCodeResponse(as, client, tokenResponse);
        assert.equal(tokens.token_type, 'bearer');
        assert.ok(tokens.expires_in > 0);
        assert.ok(tokens.refresh_token, 'offline_access gives a refresh token');
        assert.deepEqual(tokens.scope.split(' ').sort(), ['mcp', 'offline_access']);

        const active = await introspect(tokens.access_token);
        assert.equal(active.active, true, JSON.stringify(active));
        assert.ok(audienceIncludes(active.aud, env.resource), `aud ${JSON.stringify(active.aud)}`);
        assert.equal(active.client_id, client.client_id);
        assert.equal(active.sub, USER.username);
        assert.equal(active.iss, as.issuer);

        // Refresh (without repeating the resource): new tokens, still bound to the resource.
        const refreshed = await refresh(tokens.refresh_token);
        assert.equal(refreshed.token_type, 'bearer');
        assert.ok(refreshed.refresh_token, 'rotation returns a new refresh token');
        assert.notEqual(refreshed.access_token, tokens.access_token);
        assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
        const afterRefresh = await introspect(refreshed.access_token);
        assert.equal(afterRefresh.active, true);
        assert.ok(audienceIncludes(afterRefresh.aud, env.resource), `aud after refresh ${JSON.stringify(afterRefresh.aud)}`);

        if (processes === 2) {
          const served = env.servedBy().map((n, i) => n - before[i]);
          assert.ok(served.every((n) => n > 0), `both processes served part of this flow: ${served}`);
          // With nothing in between, alternation puts each step on the other process: the session
          // made at sign-in is read by the other process, and the code issued by one is redeemed
          // at the other — only a shared store makes that work.
          const flow = env.proxyLog().slice(logStart);
          const first = (method, path) => flow.find((r) => r.method === method && r.path === path);
          const at = (r) => `${r.method} ${r.path} → process ${r.backend}`;
          const [login, consentPage] = [first('POST', '/login'), first('GET', '/consent')];
          const [consentPost, token] = [first('POST', '/consent'), first('POST', '/token')];
          assert.notEqual(login.backend, consentPage.backend, `${at(login)}, ${at(consentPage)}`);
          assert.notEqual(consentPost.backend, token.backend, `${at(consentPost)}, ${at(token)}`);
        }
      }));

    test(`oauth4webapi: a replayed code is invalid_grant and revokes the tokens it gave ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const { params, codeVerifier } = await authorize();
        const tokens = await oauth.processAuthorizationCodeResponse(as, client, await exchange(params, codeVerifier));

        const replay = await exchange(params, codeVerifier);
        await assertOAuthError(oauth.processAuthorizationCodeResponse(as, client, replay), 'invalid_grant', 'replayed code');

        const access = await introspect(tokens.access_token);
        assert.equal(access.active, false, `access token from a replayed code: ${JSON.stringify(access)}`);
        await assertOAuthError(refresh(tokens.refresh_token), 'invalid_grant', 'refresh token from a replayed code');
      }));

    test(`oauth4webapi: a wrong code_verifier is invalid_grant ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const { params } = await authorize();
        const wrongVerifier = oauth.generateRandomCodeVerifier();
        const response = await exchange(params, wrongVerifier);
        await assertOAuthError(oauth.processAuthorizationCodeResponse(as, client, response), 'invalid_grant', 'wrong code_verifier');
      }));

    test(`oauth4webapi: a rotated-out refresh token is invalid_grant and ends the family ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const first = await freshTokens();
        const r1 = first.refresh_token;
        const second = await refresh(r1);
        const r2 = second.refresh_token;
        assert.notEqual(r2, r1);

        await assertOAuthError(refresh(r1), 'invalid_grant', 'rotated-out refresh token R1');
        // Reuse of an old refresh token revokes the whole family (docs/behaviour.md §7): R2 is dead too.
        await assertOAuthError(refresh(r2), 'invalid_grant', 'R2 after R1 was reused');
        const access = await introspect(second.access_token);
        assert.equal(access.active, false, `access token of the revoked family: ${JSON.stringify(access)}`);
      }));

    test(`oauth4webapi: a revoked refresh token is invalid_grant ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const { refresh_token: r } = await freshTokens();
        const response = await oauth.revocationRequest(as, client, oauth.None(), r, {
          additionalParameters: { token_type_hint: 'refresh_token' },
          ...insecure,
        });
        await oauth.processRevocationResponse(response); // 200 expected, else it throws

        await assertOAuthError(refresh(r), 'invalid_grant', 'revoked refresh token');

        // Revoking an unknown or already revoked token is still 200 (RFC 7009 §2.2).
        await oauth.processRevocationResponse(
          await oauth.revocationRequest(as, client, oauth.None(), r, insecure),
        );
      }));

    test(`oauth4webapi: denying consent gives access_denied with state and iss ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        // A client of its own, so no remembered approval skips the consent page.
        const other = await registerPublicClient('Doorman interop (oauth4webapi, denied)');
        await assert.rejects(authorize({ forClient: other, decision: 'deny' }), (err) => {
          assert.ok(err instanceof oauth.AuthorizationResponseError, `expected an authorization error, got ${err?.stack ?? err}`);
          assert.equal(err.error, 'access_denied');
          return true;
        });
      }));

    test(`oauth4webapi: client_credentials for the confidential client ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const response = await oauth.clientCredentialsGrantRequest(
          as,
          resourceServer.client,
          resourceServer.auth,
          { scope: 'mcp' },
          insecure,
        );
        const tokens = await oauth.processClientCredentialsResponse(as, resourceServer.client, response);
        assert.equal(tokens.token_type, 'bearer');
        const answer = await introspect(tokens.access_token);
        assert.equal(answer.active, true);
        assert.equal(answer.client_id, resourceServer.client.client_id);
      }));

    test(`oauth4webapi: a wrong client secret is 401 with a Basic challenge ${label}`, async (t) =>
      withServerLogs(t, env, async () => {
        const response = await oauth.clientCredentialsGrantRequest(
          as,
          resourceServer.client,
          oauth.ClientSecretBasic('not-the-secret'),
          { scope: 'mcp' },
          insecure,
        );
        assert.equal(response.status, 401);
        // oauth4webapi turns a 401 with WWW-Authenticate into a challenge error before the body.
        await assert.rejects(oauth.processClientCredentialsResponse(as, resourceServer.client, response), (err) => {
          assert.ok(err instanceof oauth.WWWAuthenticateChallengeError, `expected a challenge error, got ${err?.stack ?? err}`);
          assert.equal(err.status, 401);
          assert.ok(err.cause.some((c) => c.scheme === 'basic'), `challenges: ${JSON.stringify(err.cause)}`);
          return true;
        });
      }));

    if (processes === 2) {
      test(`oauth4webapi: both Doorman processes served requests ${label}`, () => {
        const served = env.servedBy();
        assert.ok(served[0] > 0 && served[1] > 0, `requests per process: ${served}`);
      });
    }
  });
}
