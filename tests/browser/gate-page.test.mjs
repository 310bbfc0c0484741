// docs/behaviour.md §13.2: a browser that opens an MCP URL behind the gate gets a styled page with
// the same 401 and WWW-Authenticate an MCP client gets: what the endpoint is, which authorization
// server protects it, and the URL to give an MCP client. Checked at desktop and phone widths, in
// the light and dark palettes: axe-core, layout, screenshots, no console error or CSP violation.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DESKTOP, PHONE, formatViolations, runAxe, screenshotDir, settle, startEnvironment } from './lib/env.mjs';
import { layoutProblems } from './lib/layout.mjs';

const BLOCKING = new Set(['serious', 'critical']);
let env;

before(async () => {
  env = await startEnvironment();
  await mkdir(screenshotDir, { recursive: true });
});
after(async () => {
  await env?.stop();
});

test('the gate page: 401 with the challenge, what this is, who protects it, the URL to paste', async () => {
  const page = await env.newPage({ viewport: DESKTOP });
  const url = `${env.issuer}/mcp`;

  const response = await page.goto(url);

  assert.equal(response.status(), 401);
  const challenge = response.headers()['www-authenticate'];
  assert.equal(challenge, `Bearer resource_metadata="${env.issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp"`);
  assert.equal(await page.locator('h1').textContent(), 'Team tools is an MCP server');
  assert.equal(await page.locator('code.client-id').textContent(), url, 'the MCP server URL, to copy');
  assert.equal(await page.locator(`a[href="${env.issuer}"]`).count(), 1, 'the authorization server, linked');
  const styled = await page.evaluate(() => getComputedStyle(document.querySelector('main.card')).borderTopLeftRadius);
  assert.notEqual(styled, '0px', 'the stylesheet applied');
  await page.context().close();
});

for (const [width, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
  for (const scheme of ['light', 'dark']) {
    test(`the gate page at ${width} width, ${scheme}: axe clean, laid out, screenshot`, async (t) => {
      const page = await env.newPage({ viewport, colorScheme: scheme });
      await page.goto(`${env.issuer}/mcp`);
      await settle(page);

      const violations = await runAxe(page);
      const blocking = violations.filter((v) => BLOCKING.has(v.impact));
      const minor = violations.filter((v) => !BLOCKING.has(v.impact));
      if (minor.length) t.diagnostic(formatViolations(`gate ${width} ${scheme}`, minor));
      assert.equal(blocking.length, 0, formatViolations(`gate ${width} ${scheme}`, blocking));
      if (scheme === 'light') assert.deepEqual(await layoutProblems(page), []);
      const file = path.join(screenshotDir, `gate-${width}${scheme === 'dark' ? '-dark' : ''}.png`);
      await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
      await page.context().close();
    });
  }
}

test('no console error, CSP violation or failed load on the gate page', () => {
  assert.deepEqual(env.problems(), []);
});
