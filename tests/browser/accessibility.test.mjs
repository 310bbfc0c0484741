// BEHAVIOUR §5.4: every page must pass an automated accessibility check. axe-core runs inside
// each page Doorman renders (see lib/pages.mjs), in the light and the dark palette at desktop
// width and in the light palette at phone width; no `serious` or `critical` violation may be
// reported. Minor and moderate ones are printed, not failed.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DESKTOP, PHONE, formatViolations, runAxe, startEnvironment } from './lib/env.mjs';
import { PAGE_NAMES, walkEveryPage } from './lib/pages.mjs';

const BLOCKING = new Set(['serious', 'critical']);

let env;
before(async () => {
  env = await startEnvironment();
});
after(async () => {
  await env?.stop();
});

test('axe-core: no serious or critical violation on any page, light and dark, desktop and phone', async (t) => {
  const page = await env.newPage({ viewport: DESKTOP });
  const visited = [];
  const blocking = [];
  const minor = [];
  const check = async (where) => {
    const violations = await runAxe(page);
    for (const v of violations) (BLOCKING.has(v.impact) ? blocking : minor).push([where, v]);
  };
  await walkEveryPage(env, page, async (name) => {
    visited.push(name);
    await check(`${name} light desktop`);
    await page.emulateMedia({ colorScheme: 'dark' });
    await check(`${name} dark desktop`);
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize(PHONE);
    await check(`${name} light phone`);
    await page.setViewportSize(DESKTOP);
  });
  assert.deepEqual(visited, PAGE_NAMES);
  if (minor.length) {
    t.diagnostic(`minor/moderate axe findings (not failing):\n${minor.map(([w, v]) => formatViolations(w, [v])).join('\n')}`);
  }
  assert.equal(
    blocking.length,
    0,
    `serious or critical accessibility violations:\n${blocking.map(([w, v]) => formatViolations(w, [v])).join('\n')}`,
  );
  assert.deepEqual(env.problems(), [], 'console errors, CSP violations or failed loads');
});
