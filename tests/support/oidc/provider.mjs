// A real OpenID Provider for Doorman's tests: oidc-provider (panva/node-oidc-provider, an
// OpenID Certified implementation) on loopback, configured here and nowhere else. The Rust
// integration tests, the interop suite and the browser suite start it as a child process:
//
//   node tests/support/oidc/provider.mjs --redirect-uri URI [--redirect-uri URI …]
//        [--port N] [--client-id ID] [--client-secret SECRET] [--id-token MODE]
//
// It prints one JSON line on standard output once it listens, {"issuer": "...", "port": N, "kid": "..."},
// and runs until it is killed. Every start makes a fresh RSA signing key with a fresh `kid`, so a
// restart on the same port is a key rotation as far as a relying party can tell.
//
// The people who can sign in (devInteractions: any password is accepted):
//   alice    alice@example.com, verified, "Alice Example", groups ["staff"]
//   mallory  mallory@elsewhere.example, verified, "Mallory", no groups
//   bob      bob@example.com, NOT verified, "Bob"
//   anyone else: only a subject.
//
// --id-token MODE changes the ID token in the token endpoint's answer after the provider made it,
// to show how a relying party copes with a provider (or a network) that lies:
//   tamper       one character of the payload changed: the signature no longer matches
//   wrong-nonce  re-signed with the provider's own key, with another nonce
//   wrong-aud    re-signed with the provider's own key, for another audience

import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'client-id': { type: 'string', default: 'doorman' },
    'client-secret': { type: 'string', default: 'doorman-test-secret-0123456789abcdef' },
    'id-token': { type: 'string', default: 'ok' },
  },
});

const MODES = new Set(['ok', 'tamper', 'wrong-nonce', 'wrong-aud']);
if (!MODES.has(args['id-token'])) {
  console.error(`provider.mjs: --id-token must be one of ${[...MODES].join(', ')}`);
  process.exit(2);
}
if (args['redirect-uri'].length === 0) {
  console.error('provider.mjs: at least one --redirect-uri is required');
  process.exit(2);
}

const PEOPLE = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Example', preferred_username: 'alice', groups: ['staff'] },
  mallory: { email: 'mallory@elsewhere.example', email_verified: true, name: 'Mallory', preferred_username: 'mallory', groups: [] },
  bob: { email: 'bob@example.com', email_verified: false, name: 'Bob', preferred_username: 'bob', groups: [] },
};

const kid = randomBytes(8).toString('hex');
const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };

const port = Number(args.port);
// The issuer needs the port; listen first, then build the provider with the port it got.
const http = await import('node:http');
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: args['client-id'],
      client_secret: args['client-secret'],
      redirect_uris: args['redirect-uri'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...(PEOPLE[id] ?? {}) };
      },
    };
  },
});
provider.proxy = false;

// The lies of --id-token, told after oidc-provider made its answer.
if (args['id-token'] !== 'ok') {
  provider.use(async (ctx, next) => {
    await next();
    const idToken = ctx.body?.id_token;
    if (ctx.method !== 'POST' || ctx.path !== '/token' || typeof idToken !== 'string') return;
    const [header, payload, signature] = idToken.split('.');
    if (args['id-token'] === 'tamper') {
      const claims = JSON.parse(Buffer.from(payload, 'base64url'));
      claims.sub = `${claims.sub}-tampered`;
      ctx.body = { ...ctx.body, id_token: `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}` };
      return;
    }
    const claims = JSON.parse(Buffer.from(payload, 'base64url'));
    if (args['id-token'] === 'wrong-nonce') claims.nonce = 'not-the-nonce-doorman-sent';
    if (args['id-token'] === 'wrong-aud') claims.aud = 'someone-else';
    const forged = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(privateKey);
    ctx.body = { ...ctx.body, id_token: forged };
  });
}

// The development pages import a web font from a third-party host; a test must not send a
// browser off this machine, so that one line goes.
provider.use(async (ctx, next) => {
  // Browsers ask every origin for a favicon; an empty answer instead of a 404 in their console.
  if (ctx.path === '/favicon.ico') {
    ctx.status = 204;
    return;
  }
  await next();
  if (typeof ctx.body === 'string' && ctx.type === 'text/html') {
    ctx.body = ctx.body.replace(/@import url\(https:[^)]*\);/g, '');
  }
});

server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer, port: server.address().port, kid })}\n`);
// Standard output carries the one line above; whoever started us may stop reading it, so
// anything oidc-provider prints later goes to standard error.
console.log = console.error;
console.info = console.error;

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.closeAllConnections?.();
    server.close(() => process.exit(0));
  });
}
