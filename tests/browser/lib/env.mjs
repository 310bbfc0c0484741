// Test environment for the browser suites: one real Doorman release process (memory store,
// password sign-in for alice), a stand-in OAuth client that only serves its redirect URI
// (/callback), and headless Debian Chromium driven by playwright-core.
//
//   const env = await startEnvironment();
//   const env = await startEnvironment({ login: 'upstream' }); // + a real OpenID Provider, "test"
//   env.issuer              – Doorman's URL, e.g. http://127.0.0.1:41234
//   env.provider            – with login 'upstream': the OpenID Provider (oidc-provider), Doorman's
//                             identity provider "test" beside alice's password
//   env.redirectUri         – the client's redirect URI, http://127.0.0.1:<cbport>/callback
//   env.callbacks           – every request the client's redirect URI received (URL objects)
//   env.documentClientId    – a client_id that is a Client ID Metadata Document URL, served by the
//                             stand-in client (http on loopback, allowed by Doorman's [cimd]
//                             settings), with its logo on the same host
//   env.documentUrl(path)   – a document URL on the stand-in client (e.g. one that answers 404)
//   env.authorizeUrl(opts)  – an authorization link for a client_id, with PKCE (S256)
//   await env.newPage(opts) – a page in a fresh browser context, watched for problems
//   env.problems()          – console errors, CSP violations, failed and 4xx/5xx subresource loads
//   env.logTail()           – the last lines Doorman printed, for failure messages
//   await env.stop()        – closes the browser, stops Doorman and the client, removes the temp dir
//
// Set BROWSER_KEEP=1 to keep the temporary directory (config, Doorman log).

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

import { OP_CLIENT, startOpenIdProvider } from '../../support/oidc/start.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Root of the Doorman repository (tests/browser/lib → ../../..). */
export const repoRoot = path.resolve(here, '..', '..', '..');
/** The binary under test; run.sh checks that it exists before any test starts. */
export const doormanBinary = path.join(repoRoot, 'target', 'release', 'doorman');
/** Where every screenshot goes. */
export const screenshotDir = path.join(repoRoot, 'target', 'screenshots');
/** Debian's chromium; scripts/test installs it when missing. */
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** The one person who may sign in. */
export const USER = { username: 'alice', password: 'wonderland' };

/** axe-core's browser bundle, evaluated inside each page under test. */
export const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

const STARTUP_TIMEOUT_MS = 15_000;

// Children killed when this process exits, even after a failed test skipped its `after` hook.
const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** The caller's environment without DOORMAN_* variables, so only the config file we write counts. */
function cleanEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('DOORMAN')) env[key] = value;
  }
  return env;
}

let cachedHash;
/** The argon2 hash of USER.password, made by the binary under test. */
function passwordHash() {
  if (cachedHash) return cachedHash;
  const out = spawnSync(doormanBinary, ['hash-password'], { input: USER.password, encoding: 'utf8', env: cleanEnv() });
  if (out.status !== 0 || !out.stdout.trim().startsWith('$argon2')) {
    throw new Error(`doorman hash-password failed (status ${out.status}): ${out.stderr || out.stdout}`);
  }
  cachedHash = out.stdout.trim();
  return cachedHash;
}

function listen(server, port = 0) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

async function freePort() {
  const probe = net.createServer();
  const port = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const q = (s) => JSON.stringify(s); // a TOML basic string is a JSON string for these values

/** base64url without padding. */
const b64url = (buf) => buf.toString('base64url');

/** A PKCE pair (RFC 7636, S256). */
export function pkce() {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

/** The HTML the stand-in client answers at its redirect URI. */
const CALLBACK_HTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Client callback</title></head>
<body><main><h1>Client callback</h1><p>The authorization server sent the browser back.</p></main></body></html>`;

/** Where the stand-in client publishes its Client ID Metadata Document. */
const DOCUMENT_PATH = '/client-metadata.json';

/** The stand-in client's metadata document (docs/behaviour.md §12). */
function clientDocument(env) {
  return {
    client_id: env.documentClientId,
    client_name: 'Example Notes',
    client_uri: env.documentUrl('/'),
    logo_uri: env.documentUrl('/logo.svg'),
    redirect_uris: [env.redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

/** The stand-in client's logo. */
const CLIENT_LOGO = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><rect width="48" height="48" rx="10" fill="#2f6f4f"/><path d="M14 12h14l6 6v18H14z" fill="#fff"/><path d="M18 22h12M18 27h12M18 32h8" stroke="#2f6f4f" stroke-width="2"/></svg>`;

/** The [[login.providers]] entry of the OpenID Provider at `issuer`. */
function providerConfig(issuer) {
  return `
[[login.providers]]
id = "test"
name = "Example IdP"
kind = "oidc"
issuer = ${q(issuer)}
client_id = ${q(OP_CLIENT.id)}
client_secret = ${q(OP_CLIENT.secret)}
allowed_domains = ["example.com"]
`;
}

export async function startEnvironment({ login = 'password' } = {}) {
  if (!existsSync(doormanBinary)) throw new Error(`${doormanBinary} is missing; run cargo build --release`);
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing; apt-get install -y chromium`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doorman-browser-'));
  const env = { dir, callbacks: [] };
  const log = [];
  let doorman;
  let exited;

  // 1. The client: its redirect URI, its metadata document and its logo.
  const client = http.createServer((req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    if (url.pathname === DOCUMENT_PATH) {
      const body = JSON.stringify(clientDocument(env));
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=600' });
      res.end(body);
      return;
    }
    if (url.pathname === '/logo.svg') {
      res.writeHead(200, { 'content-type': 'image/svg+xml', 'cache-control': 'max-age=600' });
      res.end(CLIENT_LOGO);
      return;
    }
    if (url.pathname.endsWith('.json')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no such document\n');
      return;
    }
    env.callbacks.push(url);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(CALLBACK_HTML);
  });
  const clientPort = await listen(client);
  env.redirectUri = `http://127.0.0.1:${clientPort}/callback`;
  env.documentUrl = (p) => `http://127.0.0.1:${clientPort}${p}`;
  env.documentClientId = env.documentUrl(DOCUMENT_PATH);

  const stop = async () => {
    await env.browser?.close().catch(() => {});
    if (doorman && !exited) {
      doorman.kill('SIGTERM');
      const done = new Promise((resolve) => doorman.once('exit', resolve));
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve(false), 5000);
      });
      const stopped = await Promise.race([done.then(() => true), timeout]);
      clearTimeout(timer);
      if (!stopped) doorman.kill('SIGKILL');
    }
    client.closeAllConnections?.();
    await new Promise((resolve) => client.close(() => resolve()));
    await env.provider?.stop();
    if (!process.env.BROWSER_KEEP) await rm(dir, { recursive: true, force: true });
  };
  env.stop = stop;

  try {
    // 2. Doorman.
    const port = await freePort();
    env.issuer = `http://127.0.0.1:${port}`;
    if (login === 'upstream') {
      env.provider = await startOpenIdProvider({ redirectUris: [`${env.issuer}/login/test/callback`] });
      liveChildren.add(env.provider.child);
    }
    const config = `issuer = ${q(env.issuer)}

[server]
bind = ${q(`127.0.0.1:${port}`)}
workers = 2
static_dir = ${q(path.join(repoRoot, 'static'))}

[storage]
backend = "memory"

[rate_limit]
enabled = false

[login]
mode = ${q(login)}
users = [{ username = ${q(USER.username)}, password_hash = ${q(passwordHash())} }]
${env.provider ? providerConfig(env.provider.issuer) : ''}
# The stand-in client publishes its metadata document on loopback over http.
[cimd]
allow_hosts = ["127.0.0.1"]
allow_http_hosts = ["127.0.0.1"]

# The gate's page (gate-page.test.mjs): a browser opening the MCP URL without a token. Nothing
# listens upstream; no request gets that far.
[[gate.routes]]
path = "/mcp"
upstream = "http://127.0.0.1:9/mcp"
name = "Team tools"
`;
    const configFile = path.join(dir, 'doorman.toml');
    await writeFile(configFile, config);
    doorman = spawn(doormanBinary, ['--config', configFile, 'serve'], {
      cwd: dir,
      env: { ...cleanEnv(), RUST_LOG: process.env.RUST_LOG || 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    liveChildren.add(doorman);
    doorman.once('exit', (code, signal) => {
      exited = `exited with ${signal || code}`;
      liveChildren.delete(doorman);
    });
    for (const stream of [doorman.stdout, doorman.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        log.push(...chunk.split('\n').filter(Boolean));
        if (log.length > 400) log.splice(0, log.length - 400);
      });
    }
    env.logTail = (n = 40) => log.slice(-n).join('\n');
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      if (exited) throw new Error(`doorman ${exited}:\n${env.logTail()}`);
      try {
        const res = await fetch(`${env.issuer}/healthz`);
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`doorman not healthy after ${STARTUP_TIMEOUT_MS} ms:\n${env.logTail()}`);
      await sleep(50);
    }

    // 3. Chromium. Without the background-networking flags it keeps trying to reach Google.
    // playwright-core gives every launch a fresh temporary --user-data-dir of its own (it refuses
    // one in `args`) and deletes it on close.
    env.browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (e) {
    await stop();
    throw e;
  }

  /** Every problem any watched page ran into: console errors, CSP reports, failed loads. */
  const problems = [];
  env.problems = () => problems.slice();

  /**
   * A page in its own browser context (own cookies), watched for console errors, page errors,
   * failed requests and subresources answered with 4xx/5xx. Documents may be 400 on purpose
   * (the unregistered-client page, error pages), so only subresources count.
   */
  env.newPage = async ({ viewport = DESKTOP, colorScheme = 'light', bypassCSP = false } = {}) => {
    const context = await env.browser.newContext({ viewport, colorScheme, bypassCSP, locale: 'en-US' });
    // Chromium logs a CSP block on the console too; this reports it even if that message changes.
    // Init scripts are installed through the DevTools protocol, which the page's CSP does not govern.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP blocked ${e.blockedURI || 'inline content'} (${e.effectiveDirective})`);
      });
    });
    const page = await context.newPage();
    // Every page is local; anything slower than this is a failure, reported while time remains.
    page.setDefaultTimeout(5000);
    // Documents answered 4xx on purpose (the unregistered-client page is a 400) make Chromium log
    // "Failed to load resource"; that line is expected for a document, a problem for anything else.
    const documents = new Set();
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const source = msg.location()?.url;
      if (msg.text().startsWith('Failed to load resource') && documents.has(source)) return;
      problems.push(`console error on ${page.url()}: ${msg.text()}${source ? ` (${source})` : ''}`);
    });
    page.on('pageerror', (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
    page.on('requestfailed', (req) => {
      problems.push(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
    });
    page.on('response', (res) => {
      if (res.request().resourceType() === 'document') documents.add(res.url());
      else if (res.status() >= 400) {
        problems.push(`subresource ${res.url()} answered ${res.status()}`);
      }
    });
    return page;
  };

  /** An authorization link for `clientId` (PKCE S256, scope mcp, state s1 unless told). */
  env.authorizeUrl = ({ clientId, state = 's1', challenge = pkce().challenge, scope = 'mcp' } = {}) => {
    const url = new URL('/authorize', env.issuer);
    if (clientId !== undefined) url.searchParams.set('client_id', clientId);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('redirect_uri', env.redirectUri);
    url.searchParams.set('state', state);
    url.searchParams.set('code_challenge', challenge);
    url.searchParams.set('code_challenge_method', 'S256');
    url.searchParams.set('scope', scope);
    return url.toString();
  };

  return env;
}

/** A client_id no one registered: long enough to test wrapping on a phone. */
export function unknownClientId() {
  return `mcp-desktop-client-${randomBytes(24).toString('hex')}`;
}

/** Resolves once every CSS transition and animation on the page has finished. */
export async function settle(page) {
  await page.evaluate(() => Promise.all(document.getAnimations().map((a) => a.finished.catch(() => {}))));
}

/**
 * Runs axe-core on the page as it is now and resolves with its violations, each reduced to
 * { id, impact, help, nodes: [{ target, summary }] }.
 *
 * Injection: the pages' CSP (`default-src 'none'`) blocks a <script> element, so
 * page.addScriptTag cannot be used. axe's source is instead evaluated through the DevTools
 * protocol (page.evaluate → Runtime.evaluate), which a page's CSP does not govern; the page's
 * own CSP stays in force, so the check sees the page exactly as a visitor does.
 */
export async function runAxe(page) {
  // After a palette or viewport change, colours are mid-transition for a moment (buttons fade
  // their background); axe must judge the colours a person actually reads, so let them settle.
  await settle(page);
  const loaded = await page.evaluate(() => typeof window.axe?.run === 'function');
  if (!loaded) await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    }));
  });
}

/** Violations as readable lines for a failure message. */
export function formatViolations(where, violations) {
  return violations
    .map((v) => {
      const nodes = v.nodes.map((n) => `      ${n.target}\n        ${(n.summary || '').replace(/\n/g, '\n        ')}`).join('\n');
      return `  [${where}] ${v.id} (${v.impact}): ${v.help}\n${nodes}`;
    })
    .join('\n');
}
