// A peer for scripts/bench --peers: oidc-provider (npm, panva/node-oidc-provider, an OpenID
// Certified implementation; the version pinned in tests/support/oidc/package.json, installed
// there) on loopback, with dynamic registration on and PKCE required.
//
//   node scripts/peers/oidc-provider.mjs --port N
//
// Its own paths: metadata at /.well-known/oauth-authorization-server (the same document as
// /.well-known/openid-configuration: OpenID discovery fields included), registration at /reg,
// authorization at /auth, the code exchange at /token. Everything is kept in process memory
// (the adapter below); sign-in and consent are its devInteractions pages (any login and
// password), so scripts/bench walks them once per run and then collects codes with the session
// cookie.
// One process (Node.js, one event loop), no request log: as its README starts it.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { port: { type: 'string' } } });
if (!args.port) {
  console.error('oidc-provider.mjs: --port N is required');
  process.exit(2);
}

// From tests/support/oidc/node_modules, where scripts/bench (and scripts/test) install it.
const here = dirname(fileURLToPath(import.meta.url));
const entry = join(here, '../../tests/support/oidc/node_modules/oidc-provider/lib/index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

// Signing keys made at each start: ES256 for the access tokens (as Doorman's default), RS256
// for ID tokens (oidc-provider needs one; none is issued here, the requests ask no openid scope).
const jwk = (type, options, alg) => ({
  ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
  alg, use: 'sig', kid: alg,
});
const keys = [jwk('ec', { namedCurve: 'P-256' }, 'ES256'), jwk('rsa', { modulusLength: 2048 }, 'RS256')];

// The store: every record in a Map, as Doorman's memory backend and FastMCP's in-memory provider
// keep theirs. oidc-provider's own development adapter keeps only the last 1000 records (an LRU:
// a pool of codes outgrows it and loses its oldest codes, "authorization code not found") and
// rewrites a grant's whole list of records on each write (one grant has a whole pool of codes).
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);
const records = new Map(); // "Model:id" → { payload, expiresAt (ms) }
const grants = new Map(); // grantId → Set of "Model:id"
const index = new Map(); // "sessionUid:…", "userCode:…" → id
class MapAdapter {
  constructor(model) { this.model = model; }
  key(id) { return `${this.model}:${id}`; }
  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    records.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!grants.has(payload.grantId)) grants.set(payload.grantId, new Set());
      grants.get(payload.grantId).add(key);
    }
    if (this.model === 'Session') index.set(`sessionUid:${payload.uid}`, id);
    if (payload.userCode) index.set(`userCode:${payload.userCode}`, id);
  }
  async find(id) {
    const key = this.key(id);
    const record = records.get(key);
    if (!record) return undefined;
    if (record.expiresAt <= Date.now()) { records.delete(key); return undefined; }
    return record.payload;
  }
  async findByUid(uid) { return this.find(index.get(`sessionUid:${uid}`)); }
  async findByUserCode(userCode) { return this.find(index.get(`userCode:${userCode}`)); }
  async consume(id) {
    const record = records.get(this.key(id));
    if (record) record.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) { records.delete(this.key(id)); }
  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) records.delete(key);
    grants.delete(grantId);
  }
}

const issuer = `http://127.0.0.1:${args.port}`;
const provider = new Provider(issuer, {
  adapter: MapAdapter,
  cookies: { keys: [randomBytes(16).toString('hex')] },
  jwks: { keys },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    // An MCP server as the one resource (RFC 8707): a request for scope "mcp" with no resource
    // parameter is for it, and its access tokens are RFC 9068 JWTs signed with ES256, like
    // Doorman's. Without a resource, oidc-provider grants a scope-only request nothing.
    resourceIndicators: {
      enabled: true,
      defaultResource: () => `${issuer}/mcp`,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: 'mcp', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }),
    },
  },
  pkce: { required: () => true },
  // A refresh token with every code exchange for a client registered for that grant, as Doorman
  // and FastMCP do (by default oidc-provider wants the offline_access scope as well).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // The dev sign-in's account: only a subject.
  async findAccount(_ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
});
provider.listen(Number(args.port), '127.0.0.1');
