// Plays the person's browser between an OAuth client's authorization URL and its redirect URI:
// follows redirects by hand, keeps a cookie jar, fills in Doorman's sign-in form and submits its
// consent form. With upstream sign-in it also goes through the identity provider's own pages
// (oidc-provider's sign-in and consent forms) and follows Doorman's `Refresh` back to consent.
// It knows only what a browser would see: status codes, Location, Refresh, Set-Cookie and the
// HTML of the pages.

import { USER } from './harness.mjs';

const MAX_STEPS = 16;

/** A minimal cookie jar for one host (every URL in these tests is on 127.0.0.1). */
export class CookieJar {
  #cookies = new Map();

  /** Stores the cookies of a response's Set-Cookie lines; Max-Age=0 or a past Expires deletes. */
  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((attr) => {
        const [key, val = ''] = attr.split('=').map((s) => s.trim());
        if (key.toLowerCase() === 'max-age') return Number(val) <= 0;
        if (key.toLowerCase() === 'expires') return Date.parse(val) < Date.now();
        return false;
      });
      if (expired) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  has(name) {
    return this.#cookies.has(name);
  }

  /** The Cookie request header, or undefined when the jar is empty. */
  header() {
    if (this.#cookies.size === 0) return undefined;
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'" };

/** Decodes the character references an HTML template engine produces when escaping. */
function decodeEntities(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return ENTITIES[ref.toLowerCase()] ?? whole;
  });
}

/** Attributes of one start tag, e.g. `<input type="hidden" name=a value='b'>` → {type, name, value}. */
function attributes(tag) {
  const out = {};
  const inner = tag.replace(/^<\s*[a-z]+/i, '').replace(/\/?>$/, '');
  for (const m of inner.matchAll(/([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/**
 * Every <form> of a page: its attributes, the name/value of its <input> fields (hidden ones
 * included) and its submit buttons.
 */
export function parseForms(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b[^>]*>([\s\S]*?)<\/form>/gi)) {
    const form = { ...attributes(m[0].match(/<form\b[^>]*>/i)[0]), fields: {}, buttons: [] };
    for (const input of m[1].matchAll(/<input\b[^>]*>/gi)) {
      const attrs = attributes(input[0]);
      if (attrs.name) form.fields[attrs.name] = attrs.value ?? '';
    }
    for (const button of m[1].matchAll(/<button\b[^>]*>/gi)) {
      const attrs = attributes(button[0]);
      if (attrs.name) form.buttons.push({ name: attrs.name, value: attrs.value ?? '' });
    }
    forms.push(form);
  }
  return forms;
}

const hasClass = (form, name) => (form.class ?? '').split(/\s+/).includes(name);

/** True when `location` is the client's redirect URI (same origin and path; query is the answer). */
function isRedirectUri(location, redirectUri) {
  const target = new URL(redirectUri);
  return location.origin === target.origin && location.pathname === target.pathname;
}

/**
 * Opens `authorizationUrl` as a person's browser would, signs in if asked, answers the consent
 * page with `decision` ("approve" or "deny"), and returns where Doorman finally sends the browser:
 *   { callback: URL (the redirect URI with code/state/iss or error), status, trace: [...] }
 * `trace` lists each step as "METHOD url → status" for assertions and failure messages.
 * A remembered consent or a still-valid session (same jar) may skip pages; that is followed too.
 */
export async function authorizeInBrowser(authorizationUrl, {
  redirectUri,
  decision = 'approve',
  jar = new CookieJar(),
  user = USER,
} = {}) {
  const trace = [];
  let request = { method: 'GET', url: new URL(authorizationUrl) };

  for (let step = 0; step < MAX_STEPS; step += 1) {
    const headers = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };
    const cookie = jar.header();
    if (cookie) headers.cookie = cookie;
    if (request.body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(request.url, {
      method: request.method,
      headers,
      body: request.body,
      redirect: 'manual',
    });
    jar.store(response);
    trace.push({ method: request.method, url: request.url.href, status: response.status, response });
    const fail = async (why) => {
      const body = await response.text().catch(() => '');
      throw new Error(`browser: ${why}\n${formatTrace(trace)}\nlast body: ${body.slice(0, 800)}`);
    };

    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      if (!location) await fail(`${response.status} without Location`);
      await response.body?.cancel();
      const next = new URL(location, request.url);
      if (isRedirectUri(next, redirectUri)) return { callback: next, status: response.status, trace };
      request = { method: 'GET', url: next };
      continue;
    }
    if (response.status !== 200) await fail(`unexpected status ${response.status}`);
    // Doorman's page after an upstream sign-in moves on by itself (`Refresh: 0; url=…`).
    const refresh = response.headers.get('refresh')?.match(/^\s*\d+\s*;\s*url=(.+)$/i);
    if (refresh) {
      await response.body?.cancel();
      request = { method: 'GET', url: new URL(refresh[1].trim(), request.url) };
      continue;
    }

    const forms = parseForms(await response.text());
    // oidc-provider's own pages: a sign-in form and a consent form, told apart by `prompt`.
    const atProvider = forms.find((f) => f.fields.prompt === 'login' || f.fields.prompt === 'consent');
    if (atProvider) {
      const fields = atProvider.fields.prompt === 'login'
        ? { ...atProvider.fields, login: user.username, password: user.password }
        : atProvider.fields;
      request = {
        method: (atProvider.method ?? 'post').toUpperCase(),
        url: new URL(atProvider.action, request.url),
        body: new URLSearchParams(fields).toString(),
      };
      continue;
    }
    const login = forms.find((f) => hasClass(f, 'login'));
    const consent = forms.find((f) => hasClass(f, 'consent') || f.buttons.some((b) => b.name === 'decision'));
    if (login) {
      const body = new URLSearchParams({ ...login.fields, username: user.username, password: user.password });
      request = { method: (login.method ?? 'post').toUpperCase(), url: new URL(login.action, request.url), body: body.toString() };
    } else if (consent) {
      if (!consent.buttons.some((b) => b.name === 'decision' && b.value === decision)) {
        await fail(`the consent form has no "${decision}" button`);
      }
      const body = new URLSearchParams({ ...consent.fields, decision });
      request = { method: (consent.method ?? 'post').toUpperCase(), url: new URL(consent.action, request.url), body: body.toString() };
    } else {
      await fail('a page with neither a sign-in nor a consent form');
    }
  }
  throw new Error(`browser: more than ${MAX_STEPS} steps\n${formatTrace(trace)}`);
}

/** "GET http://… → 200" lines. */
export function formatTrace(trace) {
  return trace.map((s) => `  ${s.method} ${s.url} → ${s.status}`).join('\n');
}
