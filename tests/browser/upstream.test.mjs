// Sign-in at the operator's identity provider (docs/behaviour.md §14) in headless Chromium, with a
// real OpenID Provider on loopback (oidc-provider, tests/support/oidc): the sign-in page's
// provider button → the provider's own sign-in and consent pages → back at Doorman, which moves on
// to its consent page by itself (the browser's SameSite=Strict binding must come along) → Approve
// → the client's redirect URI with a code that redeems. Then the failures a person meets
// (cancelling at the provider, an account outside allowed_domains) as pages, and every new page
// checked for accessibility (axe-core), layout at desktop and phone widths, and screenshots.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { DESKTOP, PHONE, formatViolations, pkce, runAxe, screenshotDir, startEnvironment } from './lib/env.mjs';
import { layoutProblems } from './lib/layout.mjs';
import { clickAndWait, heading } from './lib/pages.mjs';

const BLOCKING = new Set(['serious', 'critical']);

let env;
let clientId;
before(async () => {
  env = await startEnvironment({ login: 'upstream' });
  await mkdir(screenshotDir, { recursive: true });
  const res = await fetch(`${env.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'Upstream Desktop', redirect_uris: [env.redirectUri], token_endpoint_auth_method: 'none' }),
  });
  assert.equal(res.status, 201);
  clientId = (await res.json()).client_id;
});
after(async () => {
  await env?.stop();
});

/** axe (no serious or critical finding) and layout at both widths, and a screenshot of each. */
async function checkPage(page, name) {
  const found = [];
  for (const [width, viewport] of Object.entries({ desktop: DESKTOP, phone: PHONE })) {
    await page.setViewportSize(viewport);
    for (const p of await layoutProblems(page)) found.push(`${name} ${width}: ${p}`);
    const blocking = (await runAxe(page)).filter((v) => BLOCKING.has(v.impact));
    if (blocking.length) found.push(formatViolations(`${name} ${width}`, blocking));
    await page.screenshot({ path: path.join(screenshotDir, `${name}-${width}.png`), fullPage: true, animations: 'disabled' });
  }
  await page.setViewportSize(DESKTOP);
  assert.deepEqual(found, [], `accessibility or layout problems:\n${found.join('\n')}`);
}

/** The provider's sign-in page: types a login and a password, presses Sign-in, then Continue on its consent page. */
async function signInAtProvider(page, login) {
  assert.equal(new URL(page.url()).origin, new URL(env.provider.issuer).origin, `at the provider: ${page.url()}`);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await clickAndWait(page, page.getByRole('button', { name: 'Sign-in' }));
  const consent = page.getByRole('button', { name: 'Continue' });
  if (new URL(page.url()).origin === new URL(env.provider.issuer).origin) {
    // Chromium follows the provider's redirect back and Doorman's own page onwards by itself.
    await Promise.all([page.waitForURL((u) => u.pathname === '/consent' || u.pathname.startsWith('/login/')), consent.click()]);
  }
  await page.waitForLoadState('load');
}

test('provider button → the provider\'s pages → back at Doorman → consent → Approve → code', async () => {
  const page = await env.newPage();
  const { verifier, challenge } = pkce();

  await page.goto(env.authorizeUrl({ clientId, challenge }));
  assert.match(await heading(page), /Sign in/);
  await checkPage(page, 'signin-providers');
  const button = page.getByRole('link', { name: 'Sign in with Example IdP' });
  assert.ok(await button.isVisible(), 'a button for the provider');
  assert.ok(await page.getByLabel('Password').isVisible(), 'the password form stays for login.users');
  // Keyboard: the button is reachable with Tab and pressed with Enter.
  await button.focus();
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
  await signInAtProvider(page, 'alice');

  // Doorman's consent page, reached with the browser's SameSite=Strict binding.
  await page.waitForURL((u) => u.pathname === '/consent');
  assert.match(await heading(page), /Allow access/);
  const facts = await page.locator('dl.facts').innerText();
  assert.match(facts, /Signed in as\s+Alice Example \(alice@example\.com\), with Example IdP/);
  await clickAndWait(page, page.getByRole('button', { name: 'Approve' }));
  const landed = new URL(page.url());
  assert.equal(`${landed.origin}${landed.pathname}`, env.redirectUri);
  assert.equal(landed.searchParams.get('state'), 's1');
  assert.equal(landed.searchParams.get('iss'), env.issuer);

  const token = await fetch(`${env.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: landed.searchParams.get('code'),
      redirect_uri: env.redirectUri,
      client_id: clientId,
      code_verifier: verifier,
    }),
  });
  assert.equal(token.status, 200, await token.clone().text());
  // The page between the provider and consent moves on at once, so the browser may abandon its
  // favicon or stylesheet load there (net::ERR_ABORTED): that is not a failed load.
  const problems = env.problems().filter((p) => !(/ERR_ABORTED/.test(p) && p.includes('/static/')));
  assert.deepEqual(problems, [], 'console errors, CSP violations or failed loads');
  await page.context().close();
});

test('the page between the provider and consent is accessible and moves on by itself', async () => {
  const page = await env.newPage();
  // The page's Refresh is held back once (the navigation it starts is aborted), to look at it.
  const held = [];
  const consent = (url) => url.pathname === '/consent';
  await page.route(consent, (route) => {
    held.push(route.request().url());
    return route.abort('aborted');
  });
  await page.goto(env.authorizeUrl({ clientId, challenge: pkce().challenge }));
  await clickAndWait(page, page.getByRole('link', { name: 'Sign in with Example IdP' }));
  await page.locator('input[name="login"]').fill('alice');
  await page.locator('input[name="password"]').fill('any password');
  await clickAndWait(page, page.getByRole('button', { name: 'Sign-in' }));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL((u) => u.pathname === '/login/test/callback');
  for (let i = 0; i < 50 && held.length === 0; i += 1) await page.waitForTimeout(100);

  assert.equal(held.length, 1, 'the page moved on to consent by itself');
  assert.match(held[0], /\/consent\?request=/);
  assert.equal(await heading(page), 'Signed in');
  await page.unroute(consent);
  await checkPage(page, 'upstream-continue');
  await clickAndWait(page, page.getByRole('link', { name: 'Continue' }));
  assert.match(await heading(page), /Allow access/);
  await page.context().close();
});

test('cancelling at the provider is a page with Try again, which leads back to the sign-in page', async () => {
  const page = await env.newPage();
  await page.goto(env.authorizeUrl({ clientId, challenge: pkce().challenge }));
  await clickAndWait(page, page.getByRole('link', { name: 'Sign in with Example IdP' }));

  await clickAndWait(page, page.getByRole('link', { name: /Cancel/ }));

  assert.equal(new URL(page.url()).pathname, '/login/test/callback');
  assert.equal(await heading(page), 'Sign-in was cancelled');
  await checkPage(page, 'upstream-cancelled');
  await clickAndWait(page, page.getByRole('link', { name: 'Try again' }));
  assert.match(await heading(page), /Sign in/);
  assert.ok(await page.getByRole('link', { name: 'Sign in with Example IdP' }).isVisible());
  await page.context().close();
});

test('an account outside allowed_domains is told why on a page', async () => {
  const page = await env.newPage();
  await page.goto(env.authorizeUrl({ clientId, challenge: pkce().challenge }));
  await clickAndWait(page, page.getByRole('link', { name: 'Sign in with Example IdP' }));

  await signInAtProvider(page, 'mallory');

  assert.equal(await heading(page), 'You may not sign in here');
  assert.match(await page.locator('p.lead').innerText(), /mallory@elsewhere\.example is not allowed to sign in here: only addresses in example\.com are\./);
  await checkPage(page, 'upstream-refused');
  await page.context().close();
});
