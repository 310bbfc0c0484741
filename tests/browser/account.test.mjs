// The person's side (docs/behaviour.md §15) in a real browser: approve two applications, see
// both on the account page with their scopes and resources, revoke one — its next refresh is
// refused while the other's still works — and sign out. Every page is axe-checked and shot at
// desktop and phone widths (target/screenshots/account-journey-*.png).

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DESKTOP, PHONE, formatViolations, pkce, runAxe, screenshotDir, settle, startEnvironment } from './lib/env.mjs';
import { clickAndWait, heading, signIn } from './lib/pages.mjs';

let env;
before(async () => {
  env = await startEnvironment();
  await mkdir(screenshotDir, { recursive: true });
});
after(async () => {
  await env?.stop();
});

const BLOCKING = new Set(['serious', 'critical']);

async function registerPublic(name) {
  const res = await fetch(`${env.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: name, redirect_uris: [env.redirectUri], token_endpoint_auth_method: 'none' }),
  });
  assert.equal(res.status, 201);
  return (await res.json()).client_id;
}

async function token(form) {
  const res = await fetch(`${env.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
  return { status: res.status, body: await res.json() };
}

/** Authorizes `clientId` in the browser (signing in when asked), approves, redeems the code. */
async function connect(page, clientId, resource, scope) {
  const { verifier, challenge } = pkce();
  const url = new URL(env.authorizeUrl({ clientId, challenge, scope }));
  url.searchParams.set('resource', resource);
  await page.goto(url.toString());
  if (await page.getByLabel('Password').count()) await signIn(page);
  assert.match(await heading(page), /Allow access/);
  await clickAndWait(page, page.getByRole('button', { name: 'Approve' }));
  const code = new URL(page.url()).searchParams.get('code');
  assert.ok(code, `a code at ${page.url()}`);
  const res = await token({ grant_type: 'authorization_code', code, client_id: clientId, redirect_uri: env.redirectUri, code_verifier: verifier });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

async function checkPage(page, name) {
  await settle(page);
  const violations = (await runAxe(page)).filter((v) => BLOCKING.has(v.impact));
  assert.deepEqual(violations, [], formatViolations(name, violations));
  for (const [width, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(viewport);
    await settle(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.ok(!overflow, `${name} scrolls sideways at ${width} width`);
    await page.screenshot({ path: path.join(screenshotDir, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize(DESKTOP);
}

test('two applications on the account page; revoke one, its refresh fails, the other works; sign out', async () => {
  const files = await registerPublic('Files Assistant');
  const mail = await registerPublic('Mail Assistant');
  const page = await env.newPage();

  const filesTokens = await connect(page, files, 'https://files.example/mcp', 'mcp offline_access');
  const mailTokens = await connect(page, mail, 'https://mail.example/mcp', 'mcp');

  // Both listed, each with its scopes and resource.
  await page.goto(`${env.issuer}/account`);
  assert.match(await heading(page), /Your connected applications/);
  const cards = page.locator('li.app');
  assert.equal(await cards.count(), 2);
  const filesCard = cards.filter({ hasText: 'Files Assistant' });
  const mailCard = cards.filter({ hasText: 'Mail Assistant' });
  const filesText = await filesCard.innerText();
  assert.match(filesText, /files\.example\/mcp/);
  assert.match(filesText, /offline_access/);
  assert.match(filesText, /Stay connected when you are away/);
  assert.match(await mailCard.innerText(), /mail\.example\/mcp/);
  assert.doesNotMatch(await mailCard.innerText(), /offline_access/);
  await checkPage(page, 'account-journey');

  // Revoke one, with the keyboard: Tab to its button, Enter.
  const revoke = page.getByRole('button', { name: 'Revoke access for Files Assistant' });
  await revoke.focus();
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
  assert.match(await page.locator('p.notice').innerText(), /Access for Files Assistant was revoked/);
  assert.equal(await page.locator('li.app').count(), 1);
  await checkPage(page, 'account-journey-revoked');

  const refusedRefresh = await token({ grant_type: 'refresh_token', refresh_token: filesTokens.refresh_token, client_id: files });
  assert.equal(refusedRefresh.status, 400);
  assert.equal(refusedRefresh.body.error, 'invalid_grant');
  const keptRefresh = await token({ grant_type: 'refresh_token', refresh_token: mailTokens.refresh_token, client_id: mail });
  assert.equal(keptRefresh.status, 200, JSON.stringify(keptRefresh.body));

  // Sign out: POST from the page; then the account page asks to sign in again.
  await clickAndWait(page, page.getByRole('button', { name: 'Sign out' }));
  assert.match(await heading(page), /Signed out/);
  await checkPage(page, 'account-journey-signed-out');
  await page.goto(`${env.issuer}/account`);
  assert.match(await heading(page), /Sign in/);
  assert.deepEqual(env.problems(), []);
  await page.context().close();
});
