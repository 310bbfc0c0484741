// Attacks from the security review that need a real browser (docs/security.md): remembered
// consent on another loopback port, and a cross-site form that would sign the person in as
// someone else (login CSRF). Each is performed in headless Chromium and must fail.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { pkce, startEnvironment } from './lib/env.mjs';
import { clickAndWait, heading, signIn } from './lib/pages.mjs';

let env;
before(async () => {
  env = await startEnvironment();
});
after(async () => {
  await env?.stop();
});

async function registerPublic(redirectUri, name) {
  const res = await fetch(`${env.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: name, redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' }),
  });
  assert.equal(res.status, 201);
  return (await res.json()).client_id;
}

function authorizeUrl(clientId, redirectUri) {
  const url = new URL(env.authorizeUrl({ clientId, challenge: pkce().challenge }));
  url.searchParams.set('redirect_uri', redirectUri);
  return url.toString();
}

test('remembered consent does not carry over to another loopback port', async () => {
  const clientId = await registerPublic(env.redirectUri, 'Port Hopper');
  const page = await env.newPage();

  await page.goto(authorizeUrl(clientId, env.redirectUri));
  await signIn(page);
  await clickAndWait(page, page.getByRole('button', { name: 'Approve' }));
  assert.ok(page.url().startsWith(env.redirectUri), `approved: ${page.url()}`);
  // The same redirect URI again: remembered, straight back with a code.
  await page.goto(authorizeUrl(clientId, env.redirectUri));
  assert.ok(new URL(page.url()).searchParams.get('code'), `remembered: ${page.url()}`);

  // Another port on the same loopback host (another program could listen there): asked again.
  const other = new URL(env.redirectUri);
  other.port = String(Number(other.port) === 65535 ? 1024 : Number(other.port) + 1);
  const res = await page.goto(authorizeUrl(clientId, other.toString()));
  assert.equal(res.status(), 200);
  assert.match(await heading(page), /Allow access/);
  assert.equal(new URL(page.url()).pathname, '/authorize', 'no redirect to the other port');
  await page.context().close();
});

test('a sign-in form posted from another site does not sign the person in', async () => {
  // The attacker starts a sign-in of their own (their browser, their cookies) …
  const clientId = await registerPublic(env.redirectUri, 'Login CSRF');
  const started = await fetch(authorizeUrl(clientId, env.redirectUri), { headers: { accept: 'text/html' } });
  const html = await started.text();
  const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1];
  const request = field('request');
  const csrf = field('csrf_token');
  // … and serves a page that posts it, with their password, to Doorman from another site.
  const attackerPage = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Win a prize</title></head>
<body><main><form method="post" action="${env.issuer}/login">
<input type="hidden" name="request" value="${request}"><input type="hidden" name="csrf_token" value="${csrf}">
<input type="hidden" name="username" value="alice"><input type="hidden" name="password" value="wonderland">
<button type="submit">Claim</button></form></main></body></html>`;
  const attacker = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(attackerPage);
  });
  await new Promise((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  const page = await env.newPage();
  try {
    // localhost and 127.0.0.1 are different sites to the browser.
    await page.goto(`http://localhost:${attacker.address().port}/`);
    const [response] = await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('button', { name: 'Claim' }).click(),
    ]);

    assert.equal(response.status(), 403);
    assert.match(await page.locator('main').innerText(), /not sent from the sign-in page|another browser/);
    const cookies = await page.context().cookies(env.issuer);
    assert.ok(!cookies.some((c) => c.name.endsWith('doorman_session')), `no session: ${JSON.stringify(cookies)}`);
  } finally {
    await page.context().close();
    attacker.closeAllConnections?.();
    await new Promise((resolve) => attacker.close(resolve));
  }
});
