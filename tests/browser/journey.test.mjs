// The whole journey of a person whose MCP client is unknown to Doorman, in a real browser:
// the unregistered-client page → its registration form → the new client_id → the retry link →
// sign in → consent → back at the client's redirect URI with a code (Approve) or with
// error=access_denied (Deny). Every step is a click or a keystroke; nothing is forged.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { USER, pkce, startEnvironment, unknownClientId } from './lib/env.mjs';
import { clickAndWait, heading, signIn, submitRegistration } from './lib/pages.mjs';

let env;
before(async () => {
  env = await startEnvironment();
});
after(async () => {
  await env?.stop();
});

/** From an authorization link for an unknown client to the consent page; returns what it saw. */
async function toConsent(page, { appName, challenge }) {
  const unknown = unknownClientId();

  // 1. The unregistered-client page, with the registration form prefilled.
  const res = await page.goto(env.authorizeUrl({ clientId: unknown, challenge }));
  assert.equal(res.status(), 400);
  assert.match(await heading(page), /not registered/);
  assert.equal(await page.locator('code.client-id').innerText(), unknown);
  const redirectField = page.getByLabel(/Redirect URIs/);
  assert.equal(await redirectField.inputValue(), env.redirectUri, 'redirect URI prefilled from the request');

  // 2. Register: a name, the prefilled redirect URI kept, a public client.
  await submitRegistration(page, { name: appName });
  assert.equal(new URL(page.url()).pathname, '/register');
  assert.match(await heading(page), /registered/i);
  assert.match(await page.locator('p.lead').innerText(), new RegExp(`${appName} is now registered`));
  const clientId = (await page.locator('code.client-id').innerText()).trim();
  assert.ok(clientId.length >= 16 && clientId !== unknown, `new client_id ${clientId}`);
  assert.equal(await page.getByText('Client secret').count(), 0, 'a public client gets no secret');
  assert.equal(await page.locator('dd li code').innerText(), env.redirectUri);

  // 3. The retry link: the original request with the new client_id.
  const retry = page.getByRole('link', { name: /Retry the sign-in with the new client ID/ });
  const href = new URL(await retry.getAttribute('href'), env.issuer);
  assert.equal(href.searchParams.get('client_id'), clientId);
  assert.equal(href.searchParams.get('redirect_uri'), env.redirectUri);
  assert.equal(href.searchParams.get('state'), 's1');
  assert.equal(href.searchParams.get('code_challenge'), challenge);
  await clickAndWait(page, retry);

  // 4. The sign-in page.
  assert.equal(new URL(page.url()).pathname, '/authorize');
  assert.match(await heading(page), /Sign in/i);
  assert.match(await page.locator('p.lead').innerText(), new RegExp(`${appName} wants to access your account`));
  await signIn(page);

  // 5. The consent page: who, which client, where the browser goes next, which scope.
  assert.match(await heading(page), /Allow access/);
  const facts = await page.locator('dl.facts').innerText();
  assert.match(await page.locator('p.lead').innerText(), new RegExp(`${appName} wants to access your account`));
  assert.match(facts, new RegExp(`Signed in as\\s+${USER.username}`));
  assert.match(facts, new RegExp(`Application\\s+${appName}`));
  assert.ok(facts.includes(clientId), 'consent names the client_id');
  // "Name (client ID …)" reads as one line on a desktop: the client_id is inline there.
  const appLine = await page.locator('dl.facts dd', { hasText: clientId }).evaluate((dd) => ({
    height: dd.getBoundingClientRect().height,
    lineHeight: parseFloat(getComputedStyle(dd).lineHeight),
  }));
  assert.ok(appLine.height < 2 * appLine.lineHeight, `application line wraps: ${JSON.stringify(appLine)}`);
  assert.match(facts, /After you decide, you go to\s+http:\/\/127\.0\.0\.1/);
  assert.match(facts, /Access requested\s+mcp/);
  assert.ok(await page.getByRole('button', { name: 'Approve' }).isVisible());
  assert.ok(await page.getByRole('button', { name: 'Deny' }).isVisible());
  return { clientId };
}

/** Waits for the browser to land on the client's redirect URI and returns the parameters. */
function landedParams(page) {
  const url = new URL(page.url());
  assert.equal(`${url.origin}${url.pathname}`, env.redirectUri, `browser is at ${page.url()}`);
  return url.searchParams;
}

test('unknown client → register → retry → sign in → Approve → redirect URI with code, state, iss', async () => {
  const page = await env.newPage();
  const { verifier, challenge } = pkce();
  const { clientId } = await toConsent(page, { appName: 'Journey Desktop', challenge });

  await clickAndWait(page, page.getByRole('button', { name: 'Approve' }));
  const params = landedParams(page);
  assert.ok(params.get('code')?.length >= 16, `code: ${params.get('code')}`);
  assert.equal(params.get('state'), 's1');
  assert.equal(params.get('iss'), env.issuer);
  assert.equal(params.get('error'), null);
  assert.equal(await page.locator('h1').innerText(), 'Client callback', 'the client page rendered');
  assert.equal(env.callbacks.filter((u) => u.searchParams.get('code') === params.get('code')).length, 1);

  // The code is real: the client redeems it with its PKCE verifier.
  const token = await fetch(`${env.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code'),
      redirect_uri: env.redirectUri,
      client_id: clientId,
      code_verifier: verifier,
    }),
  });
  const body = await token.json();
  assert.equal(token.status, 200, JSON.stringify(body));
  assert.equal(body.token_type.toLowerCase(), 'bearer');
  assert.ok(body.access_token);
  assert.equal(body.scope, 'mcp');

  assert.deepEqual(env.problems(), [], 'console errors, CSP violations or failed loads');
  await page.context().close();
});

test('… → Deny → redirect URI with error=access_denied, state, iss and no code', async () => {
  const page = await env.newPage();
  await toConsent(page, { appName: 'Journey Denied', challenge: pkce().challenge });

  await clickAndWait(page, page.getByRole('button', { name: 'Deny' }));
  const params = landedParams(page);
  assert.equal(params.get('error'), 'access_denied');
  assert.equal(params.get('state'), 's1');
  assert.equal(params.get('iss'), env.issuer);
  assert.equal(params.get('code'), null);

  assert.deepEqual(env.problems(), [], 'console errors, CSP violations or failed loads');
  await page.context().close();
});
