// docs/behaviour.md §5.4: a browser that follows an authorization link for an unknown client gets a
// styled page. These checks read what Chromium computed and laid out, not the HTML text: the
// stylesheet applied, the logo decoded, nothing wider than a phone, the client_id readable, every
// form field labelled, and the Content-Security-Policy blocking nothing the page needs.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DESKTOP, pkce, startEnvironment } from './lib/env.mjs';

let env;
before(async () => {
  env = await startEnvironment();
});
after(async () => {
  await env?.stop();
});

/** A client_id with characters that must be escaped, long enough to need wrapping on a phone. */
const CLIENT_ID = `cursor-desktop-<b>"bold"</b>&amp;-${'0123456789abcdef'.repeat(4)}`;

/** What Chromium computed for the page, gathered in one round trip. */
function measure() {
  const card = document.querySelector('main.card');
  const cardStyle = getComputedStyle(card);
  const logo = document.querySelector('header.site img.logo');
  const id = document.querySelector('code.client-id');
  const idBox = id.getBoundingClientRect();
  const idStyle = getComputedStyle(id);
  const button = document.querySelector('form.register button[type="submit"]');
  const buttonStyle = getComputedStyle(button);
  // Elements whose box sticks out of the viewport on the right (ignoring hidden ones).
  const sticking = [...document.body.querySelectorAll('*')]
    .filter((el) => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.right > innerWidth + 0.5;
    })
    .map((el) => `${el.tagName.toLowerCase()}${el.className ? `.${String(el.className).replace(/ /g, '.')}` : ''} right=${el.getBoundingClientRect().right}`);
  // Every control a person fills in, with the text of the label(s) that name it.
  const fields = [...document.querySelectorAll('input, textarea, select')]
    .filter((el) => el.type !== 'hidden')
    .map((el) => ({
      name: el.name,
      type: el.type,
      labels: [...el.labels].map((l) => l.textContent.replace(/\s+/g, ' ').trim()),
      value: el.value,
    }));
  return {
    innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    bodyMargin: getComputedStyle(document.body).margin,
    bodyBackground: getComputedStyle(document.body).backgroundColor,
    card: {
      background: cardStyle.backgroundColor,
      radius: cardStyle.borderTopLeftRadius,
      border: cardStyle.borderTopWidth,
      shadow: cardStyle.boxShadow,
      left: card.getBoundingClientRect().left,
      width: card.getBoundingClientRect().width,
    },
    logo: {
      complete: logo.complete,
      naturalWidth: logo.naturalWidth,
      width: logo.getBoundingClientRect().width,
      height: logo.getBoundingClientRect().height,
    },
    siteName: document.querySelector('header.site .site-name').textContent.trim(),
    clientId: {
      text: id.textContent,
      left: idBox.left,
      right: idBox.right,
      height: idBox.height,
      display: idStyle.display,
      visibility: idStyle.visibility,
      fontFamily: idStyle.fontFamily,
    },
    button: { background: buttonStyle.backgroundColor, height: button.getBoundingClientRect().height, width: button.getBoundingClientRect().width },
    sticking,
    fields,
    stylesheets: [...document.styleSheets].map((s) => ({ href: s.href, rules: s.cssRules.length })),
    steps: document.querySelectorAll('ol.steps li').length,
  };
}

async function openUnregistered(viewport) {
  const page = await env.newPage({ viewport });
  const challenge = pkce().challenge;
  const res = await page.goto(env.authorizeUrl({ clientId: CLIENT_ID, challenge }));
  return { page, res };
}

test('the unregistered-client page is styled and fits a 375px-wide phone', async () => {
  const { page, res } = await openUnregistered({ width: 375, height: 812 });
  assert.equal(res.status(), 400);
  const headers = res.headers();
  assert.match(headers['content-type'], /^text\/html/);
  assert.match(headers['content-security-policy'], /default-src 'none'/);
  assert.equal(await page.title(), `${await page.locator('h1').innerText()} · Doorman`);

  const m = await page.evaluate(measure);

  // The stylesheet was loaded, parsed and applied.
  assert.ok(m.stylesheets.length === 1 && m.stylesheets[0].href.endsWith('/static/doorman.css') && m.stylesheets[0].rules > 20, JSON.stringify(m.stylesheets));
  assert.equal(m.bodyMargin, '0px', 'the UA default body margin (8px) was not replaced');
  assert.notEqual(m.bodyBackground, 'rgba(0, 0, 0, 0)');
  assert.notEqual(m.card.background, 'rgba(0, 0, 0, 0)', 'main.card has no background colour');
  assert.notEqual(m.card.background, m.bodyBackground, 'the card does not stand out from the page');
  assert.notEqual(m.card.radius, '0px', 'main.card has no border radius');
  assert.equal(m.card.border, '1px');
  assert.notEqual(m.card.shadow, 'none');

  // The logo is an image that decoded, drawn at 32×32, next to the server's name.
  assert.ok(m.logo.complete && m.logo.naturalWidth > 0, `logo did not load: ${JSON.stringify(m.logo)}`);
  assert.equal(m.logo.width, 32);
  assert.equal(m.logo.height, 32);
  assert.equal(m.siteName, 'Doorman');

  // Nothing is wider than the phone: no horizontal scrolling, no element sticking out.
  assert.ok(m.scrollWidth <= m.innerWidth, `page scrolls sideways: scrollWidth ${m.scrollWidth} > ${m.innerWidth}`);
  assert.deepEqual(m.sticking, [], 'elements wider than the viewport');

  // The client_id is shown exactly as sent (escaped, not interpreted), in monospace, wrapped
  // inside the viewport.
  assert.equal(m.clientId.text, CLIENT_ID);
  assert.equal(await page.locator('main b').count(), 0, 'markup inside client_id was interpreted');
  assert.ok(await page.locator('code.client-id').isVisible());
  assert.equal(m.clientId.visibility, 'visible');
  assert.ok(m.clientId.left >= 0 && m.clientId.right <= m.innerWidth, `client_id box ${m.clientId.left}..${m.clientId.right}`);
  assert.ok(m.clientId.height > 40, 'a long client_id wraps onto several lines');
  assert.match(m.clientId.fontFamily, /monospace/);

  // Numbered steps, and a registration form whose every field has a label.
  assert.equal(m.steps, 3);
  assert.ok(m.fields.length >= 5, JSON.stringify(m.fields));
  for (const f of m.fields) {
    assert.ok(f.labels.length > 0 && f.labels.every((l) => l.length > 0), `field ${f.name} (${f.type}) has no label`);
  }
  const labelOf = (name) => m.fields.find((f) => f.name === name)?.labels[0];
  assert.match(labelOf('client_name'), /Application name/);
  assert.match(labelOf('redirect_uris'), /Redirect URIs/);
  assert.match(labelOf('scope'), /Scope/);
  assert.deepEqual(
    m.fields.filter((f) => f.name === 'client_type').map((f) => f.labels[0].split(' ')[0]),
    ['Public', 'Confidential'],
  );
  assert.equal(m.fields.find((f) => f.name === 'redirect_uris').value, env.redirectUri, 'redirect URI prefilled');
  assert.equal(await page.getByRole('radio', { name: /Public/ }).isChecked(), true);

  // The submit button is styled, full width on a phone and a comfortable tap target.
  assert.notEqual(m.button.background, 'rgba(0, 0, 0, 0)');
  assert.ok(m.button.height >= 44, `button height ${m.button.height}`);
  assert.ok(m.button.width > m.innerWidth * 0.7, `button width ${m.button.width}`);

  // Links named for what they lead to.
  assert.equal(await page.getByRole('link', { name: "This server's metadata" }).count(), 1);
  assert.equal(await page.getByRole('link', { name: 'How client registration works' }).count(), 1);

  assert.deepEqual(env.problems(), [], 'console errors, CSP violations or failed loads');
  await page.context().close();
});

test('the unregistered-client page: centred card on a desktop, no overflow at 320px', async () => {
  const { page } = await openUnregistered(DESKTOP);
  let m = await page.evaluate(measure);
  assert.ok(m.card.width > 500 && m.card.width <= 640, `card width ${m.card.width}`);
  assert.ok(Math.abs(m.card.left - (m.innerWidth - m.card.width) / 2) <= 1, 'card is centred');
  assert.ok(m.button.width < m.card.width / 2, 'button is not stretched on a desktop');
  assert.ok(m.scrollWidth <= m.innerWidth);

  await page.setViewportSize({ width: 320, height: 640 });
  m = await page.evaluate(measure);
  assert.ok(m.scrollWidth <= m.innerWidth, `page scrolls sideways at 320px: ${m.scrollWidth}`);
  assert.deepEqual(m.sticking, [], 'elements wider than the viewport at 320px');

  assert.deepEqual(env.problems(), [], 'console errors, CSP violations or failed loads');
  await page.context().close();
});
