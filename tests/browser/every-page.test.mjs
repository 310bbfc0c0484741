// Every page Doorman renders (lib/pages.mjs walks a browser through them like a person would),
// visited once and checked four ways:
//
//   accessibility  docs/behaviour.md §5.4: axe-core runs inside each page, in the light palette at
//                  desktop width and the dark palette at phone width; no `serious` or `critical`
//                  violation. Minor and moderate findings are printed as diagnostics.
//   layout         lib/layout.mjs at desktop (1280×900) and phone (390×844) widths: no sideways
//                  scrolling, styled controls at least 44px tall, labelled fields, spacing.
//   screenshots    full page, target/screenshots/<page>-<desktop|phone>.png; the unregistered-
//                  client and consent pages also <page>-<width>-dark.png. The README shows some.
//   problems       no console error, CSP violation, failed or 4xx/5xx subresource load.
//
// One walk feeds all four, so the whole browser run stays short.

import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DESKTOP, PHONE, formatViolations, runAxe, screenshotDir, settle, startEnvironment } from './lib/env.mjs';
import { layoutProblems } from './lib/layout.mjs';
import { PAGE_NAMES, walkEveryPage } from './lib/pages.mjs';

const WIDTHS = { desktop: DESKTOP, phone: PHONE };
/** Pages also shot in the dark palette. */
const DARK_TOO = new Set(['unregistered', 'consent', 'consent-document']);
const BLOCKING = new Set(['serious', 'critical']);

let env;
const visited = [];
const axeFindings = []; // [where, violation]
const layout = [];
const written = [];

before(async () => {
  env = await startEnvironment();
  await mkdir(screenshotDir, { recursive: true });
  // Only this suite's own files: other suites write theirs beside them.
  const ours = new Set(
    PAGE_NAMES.flatMap((name) =>
      Object.keys(WIDTHS).flatMap((w) => [`${name}-${w}.png`, `${name}-${w}-dark.png`]),
    ),
  );
  for (const file of await readdir(screenshotDir)) {
    if (ours.has(file)) await rm(path.join(screenshotDir, file));
  }
  const page = await env.newPage({ viewport: DESKTOP });
  const look = async (name, width, scheme) => {
    await page.setViewportSize(WIDTHS[width]);
    await page.emulateMedia({ colorScheme: scheme });
    await settle(page);
    if (scheme === 'light') {
      for (const p of await layoutProblems(page)) layout.push(`${name} ${width}: ${p}`);
    }
    if ((width === 'desktop') === (scheme === 'light')) {
      for (const v of await runAxe(page)) axeFindings.push([`${name} ${scheme} ${width}`, v]);
    }
    if (scheme === 'light' || DARK_TOO.has(name)) {
      const file = path.join(screenshotDir, `${name}-${width}${scheme === 'dark' ? '-dark' : ''}.png`);
      await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
      written.push(path.basename(file));
    }
  };
  await walkEveryPage(env, page, async (name) => {
    visited.push(name);
    for (const width of Object.keys(WIDTHS)) {
      for (const scheme of ['light', 'dark']) await look(name, width, scheme);
    }
    await page.setViewportSize(DESKTOP);
    await page.emulateMedia({ colorScheme: 'light' });
  });
});

after(async () => {
  await env?.stop();
});

test('every page was reached', () => {
  assert.deepEqual(visited, PAGE_NAMES);
});

test('axe-core: no serious or critical violation on any page (light desktop, dark phone)', (t) => {
  const minor = axeFindings.filter(([, v]) => !BLOCKING.has(v.impact));
  const blocking = axeFindings.filter(([, v]) => BLOCKING.has(v.impact));
  if (minor.length) {
    t.diagnostic(`minor/moderate axe findings (not failing):\n${minor.map(([w, v]) => formatViolations(w, [v])).join('\n')}`);
  }
  assert.equal(
    blocking.length,
    0,
    `serious or critical accessibility violations:\n${blocking.map(([w, v]) => formatViolations(w, [v])).join('\n')}`,
  );
});

test('layout: every page at desktop and phone widths', () => {
  assert.deepEqual(layout, [], `layout problems:\n${layout.join('\n')}`);
});

/** Width and height from a PNG's IHDR chunk. */
async function pngSize(file) {
  const buf = await readFile(file);
  assert.equal(buf.subarray(1, 4).toString('latin1'), 'PNG', `${file} is not a PNG`);
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

test('screenshots: every page, full page, at desktop and phone widths', async () => {
  const expected = PAGE_NAMES.flatMap((name) =>
    Object.keys(WIDTHS).flatMap((w) => [`${name}-${w}.png`, ...(DARK_TOO.has(name) ? [`${name}-${w}-dark.png`] : [])]),
  );
  assert.deepEqual(written, expected);
  for (const file of written) {
    const size = await pngSize(path.join(screenshotDir, file));
    const viewport = file.includes('-desktop') ? DESKTOP : PHONE;
    assert.equal(size.width, viewport.width, `${file} width`);
    assert.ok(size.height >= viewport.height, `${file} is shorter than the viewport`);
  }
});

test('no console error, CSP violation or failed load on any page', () => {
  assert.deepEqual(env.problems(), []);
});
