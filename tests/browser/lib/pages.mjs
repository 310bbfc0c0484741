// Walks a browser through every page Doorman renders, the way a person would (typing and
// clicking, never forging requests), and calls `visit(name, page)` on each one:
//
//   unregistered          GET /authorize for an unknown client_id
//   register              GET /register (the stand-alone registration form)
//   register-error        that form submitted with a redirect URI Doorman refuses
//   registered            the form on the unregistered page submitted: the new client_id
//   signin                the retry link followed: the sign-in page
//   signin-error          a wrong password
//   consent               signed in: the consent page
//   account               Approve, then GET /account: the applications the person allowed
//   error                 GET /authorize without client_id
//   error-redirect-uri    GET /authorize for a registered client with a redirect URI it never registered
//   registered-confidential  GET /register, a confidential client registered: its secret, once
//   error-return          a self-registered https client's failed request: an error page with a
//                         "Return to <host>" link instead of a redirect (RFC 9700 §4.11.2)
//   cimd-failed           GET /authorize for a client_id whose metadata document is gone (404):
//                         the page names the client's host and offers no registration
//   consent-document      the consent page of a client identified by its metadata document: its
//                         name, its logo (same host) and, prominently, its host
//   signed-out            Sign out on the account page
//
// Each step checks that it reached the page it meant to, so a visit never runs on the wrong page.

import assert from 'node:assert/strict';
import { USER, unknownClientId } from './env.mjs';

export const PAGE_NAMES = [
  'unregistered',
  'register',
  'register-error',
  'registered',
  'signin',
  'signin-error',
  'consent',
  'account',
  'error',
  'error-redirect-uri',
  'registered-confidential',
  'error-return',
  'cimd-failed',
  'consent-document',
  'signed-out',
];

/** The text of the page's h1. */
export const heading = (page) => page.locator('main h1').innerText();

/** Clicks a link or submit button and resolves once the page it leads to has loaded. */
export async function clickAndWait(page, locator) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), locator.click()]);
}

/** Fills and submits the registration form that is on the page; resolves after the next page loads. */
export async function submitRegistration(page, { name, redirectUris, confidential = false } = {}) {
  if (name !== undefined) await page.getByLabel('Application name').fill(name);
  if (redirectUris !== undefined) await page.getByLabel(/Redirect URIs/).fill(redirectUris);
  await page.getByRole('radio', { name: confidential ? /Confidential/ : /Public/ }).check();
  await clickAndWait(page, page.getByRole('button', { name: 'Register application' }));
}

/** Fills and submits the sign-in form; resolves after the next page loads. */
export async function signIn(page, { username = USER.username, password = USER.password } = {}) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await clickAndWait(page, page.getByRole('button', { name: 'Sign in' }));
}

export async function walkEveryPage(env, page, visit) {
  // unregistered
  let res = await page.goto(env.authorizeUrl({ clientId: unknownClientId() }));
  assert.equal(res.status(), 400);
  assert.match(await heading(page), /not registered/);
  await visit('unregistered', page);

  // register
  res = await page.goto(`${env.issuer}/register`);
  assert.equal(res.status(), 200);
  assert.match(await heading(page), /Register/);
  await visit('register', page);

  // register-error: http on a host that is not loopback
  await submitRegistration(page, { name: 'Example Desktop', redirectUris: 'http://example.com/callback' });
  assert.match(await page.locator('#redirect_uris_error').innerText(), /loopback/);
  assert.equal(await page.getByLabel('Application name').inputValue(), 'Example Desktop');
  await visit('register-error', page);

  // registered: from the unregistered page, so there is a retry link
  await page.goto(env.authorizeUrl({ clientId: unknownClientId() }));
  await submitRegistration(page, { name: 'Example Desktop' });
  assert.match(await heading(page), /registered/i);
  const clientId = (await page.locator('code.client-id').innerText()).trim();
  await visit('registered', page);

  // signin
  await clickAndWait(page, page.getByRole('link', { name: /Retry the sign-in/ }));
  await page.getByLabel('Password').waitFor();
  await visit('signin', page);

  // signin-error
  await signIn(page, { password: 'not the password' });
  await page.locator('p.error[role="alert"]').waitFor();
  await visit('signin-error', page);

  // consent
  await signIn(page);
  await page.getByRole('button', { name: 'Approve' }).waitFor();
  await visit('consent', page);

  // account: approve first, so one application is listed
  await clickAndWait(page, page.getByRole('button', { name: 'Approve' }));
  res = await page.goto(`${env.issuer}/account`);
  assert.equal(res.status(), 200);
  assert.match(await heading(page), /connected applications/);
  await page.getByRole('button', { name: /^Revoke access for / }).waitFor();
  await visit('account', page);

  // error: no client_id
  res = await page.goto(`${env.issuer}/authorize?response_type=code`);
  assert.equal(res.status(), 400);
  await visit('error', page);

  // error-redirect-uri: a redirect URI the client never registered
  const url = new URL(env.authorizeUrl({ clientId }));
  url.searchParams.set('redirect_uri', 'https://attacker.example/callback');
  res = await page.goto(url.toString());
  assert.equal(res.status(), 400);
  await visit('error-redirect-uri', page);

  // registered-confidential: from the stand-alone form, so no retry link; a secret, once
  await page.goto(`${env.issuer}/register`);
  await submitRegistration(page, { name: 'Example Server', redirectUris: env.redirectUri, confidential: true });
  assert.match(await heading(page), /registered/i);
  assert.equal(await page.getByText('Client secret', { exact: true }).count(), 1);
  assert.equal(await page.getByRole('link', { name: /Retry the sign-in/ }).count(), 0);
  await visit('registered-confidential', page);

  // error-return: a web client that registered itself, and a request it got wrong
  const web = await fetch(`${env.issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'Web App', redirect_uris: ['https://app.example/landing'], token_endpoint_auth_method: 'none' }),
  }).then((r) => r.json());
  res = await page.goto(`${env.issuer}/authorize?client_id=${web.client_id}&response_type=token&state=s1`);
  assert.equal(res.status(), 400);
  assert.equal(new URL(page.url()).pathname, '/authorize', 'not redirected');
  const back = page.getByRole('link', { name: 'Return to app.example' });
  assert.match(await back.getAttribute('href'), /^https:\/\/app\.example\/landing\?error=unsupported_response_type/);
  await visit('error-return', page);

  // cimd-failed: a client whose metadata document answers 404
  res = await page.goto(env.authorizeUrl({ clientId: env.documentUrl('/gone-metadata.json') }));
  assert.equal(res.status(), 400);
  assert.match(await heading(page), /could not be identified/);
  const documentHost = new URL(env.documentClientId).host;
  const failed = await page.locator('main').innerText();
  assert.ok(failed.includes(documentHost) && failed.includes('HTTP 404'), `names the host and what failed: ${failed}`);
  assert.equal(await page.locator('form').count(), 0, 'no registration form');
  assert.doesNotMatch(failed, /regist/i, 'nothing suggests registering');
  await visit('cimd-failed', page);

  // consent-document: still signed in, so straight to the consent page
  res = await page.goto(env.authorizeUrl({ clientId: env.documentClientId }));
  assert.equal(res.status(), 200);
  await page.getByRole('button', { name: 'Approve' }).waitFor();
  assert.equal(await page.locator('strong.host').innerText(), documentHost);
  assert.match(await page.locator('p.lead').innerText(), /Example Notes/);
  assert.equal(await page.locator('img.client-logo').evaluate((img) => img.naturalWidth > 0), true, 'the logo loaded');
  await visit('consent-document', page);

  // signed-out: last, as the steps above need the session
  res = await page.goto(`${env.issuer}/account`);
  assert.equal(res.status(), 200);
  await clickAndWait(page, page.getByRole('button', { name: 'Sign out' }));
  assert.match(await heading(page), /Signed out/);
  await visit('signed-out', page);

  return { clientId };
}
