// Test environment for the interop suites: a private Redis, one or two real Doorman release
// processes sharing it, an optional round-robin reverse proxy in front of them, and a stand-in MCP
// server that publishes RFC 9728 protected-resource metadata pointing at Doorman.
//
//   const env = await startEnvironment({ processes: 2 });
//   const env = await startEnvironment({ login: 'upstream' }); // sign-in at a real OpenID Provider
//   env.issuer        – the URL every client uses (the proxy's URL when processes = 2)
//   env.resource      – the MCP server URL / RFC 8707 resource indicator
//   env.provider      – with login 'upstream': the OpenID Provider (oidc-provider, tests/support/oidc),
//                      Doorman's only identity provider, id "test"
//   env.servedBy()    – requests forwarded to each Doorman process so far (processes = 2)
//   env.proxyLog()    – which process served each request, in order (processes = 2)
//   env.logTail()     – the last lines Doorman and Redis printed, for failure messages
//   env.operatorClient(args) – `doorman clients register …` against the environment's store, as
//                      an operator does it; returns { client_id, client_secret }
//   env.admin(args)   – any other `doorman …` command on the same settings (e.g. ['keys', 'rotate']);
//                      returns what it printed
//   startEnvironment({ tokens: 'format = "opaque"' }) – lines added to the [tokens] table
//   await env.stop()  – stops everything and removes the temporary directory
//
// Nothing is shared between environments: each has its own temporary directory, Redis socket,
// ports and key prefix. Set INTEROP_KEEP=1 to keep the temporary directory (logs, config).

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { OP_CLIENT, startOpenIdProvider } from '../../support/oidc/start.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Root of the Doorman repository (tests/interop/lib → ../../..). */
export const repoRoot = path.resolve(here, '..', '..', '..');
/** The binary under test; run.sh checks that it exists before any test starts. */
export const doormanBinary = path.join(repoRoot, 'target', 'release', 'doorman');

/** The one person who may sign in. */
export const USER = { username: 'alice', password: 'wonderland' };

const STARTUP_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

// Every child process started by any environment in this test process. They are killed when
// this process exits normally; for the exits that skip 'exit' handlers (a fatal error inside the
// test runner, e.g. EPIPE when its output is cut off, or SIGKILL after a timeout) each
// environment also has a watchdog (see startWatchdog). Orphans are not killed by the kernel.
const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/**
 * A detached shell that outlives this process: once this process is gone, it kills every pid
 * listed in `pidFile` and removes the environment's directory. stop() ends it when all is well.
 */
function startWatchdog(dir, pidFile) {
  const cleanup = process.env.INTEROP_KEEP ? ':' : 'rm -rf "$2"';
  // A zombie still answers kill -0 (a container's pid 1 may not reap it), so check its state too.
  const script = `while kill -0 "$0" 2>/dev/null && ! grep -q '^State:.*zombie' /proc/"$0"/status 2>/dev/null; do sleep 0.5; done
[ -f "$1" ] && kill -KILL $(cat "$1") 2>/dev/null
${cleanup}`;
  const dog = spawn('sh', ['-c', script, String(process.pid), pidFile, dir], { stdio: 'ignore', detached: true });
  dog.unref();
  return dog;
}

let cachedPasswordHash;

/** The argon2 PHC hash of USER.password, made by the binary under test (`doorman hash-password`). */
function passwordHash() {
  if (cachedPasswordHash) return cachedPasswordHash;
  const out = spawnSync(doormanBinary, ['hash-password'], {
    input: USER.password,
    encoding: 'utf8',
    env: cleanEnv(),
  });
  if (out.status !== 0 || !out.stdout.trim().startsWith('$argon2')) {
    throw new Error(`doorman hash-password failed (status ${out.status}): ${out.stderr || out.stdout}`);
  }
  cachedPasswordHash = out.stdout.trim();
  return cachedPasswordHash;
}

/** The caller's environment without DOORMAN_* variables, so only the config file we write counts. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('DOORMAN')) env[key] = value;
  }
  return { ...env, ...extra };
}

/** Listens on an ephemeral loopback port and resolves with the port. */
function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

/** A loopback port that is free right now (briefly bound, then released). */
async function freePort() {
  const probe = net.createServer();
  const port = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

function closeServer(server) {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `check()` returns a truthy value; rejects after `timeoutMs` or when `abort()` says why. */
async function waitFor(what, check, { timeoutMs = STARTUP_TIMEOUT_MS, abort = () => undefined } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reason = abort();
    if (reason) throw new Error(`${what}: ${reason}`);
    try {
      if (await check()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Sends PING over the Redis unix socket and resolves true on +PONG. */
function redisPing(socketPath) {
  return new Promise((resolve) => {
    const socket = net.createConnection(socketPath);
    let reply = '';
    socket.setTimeout(1000, () => socket.destroy());
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('\r\n')) {
        socket.end();
        resolve(reply.startsWith('+PONG'));
      }
    });
    socket.on('error', () => resolve(false));
    socket.on('close', () => resolve(false));
  });
}

/** Starts a child process whose output goes to `logFile`; it is tracked for clean-up. */
function startChild(command, args, { logFile, cwd, env, pidFile }) {
  const log = createWriteStream(logFile);
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      child.exitInfo = signal ? `killed by ${signal}` : `exited with status ${code}`;
      resolve();
    });
  });
  child.once('error', (err) => {
    child.exitInfo = `could not start: ${err.message}`;
  });
  liveChildren.add(child);
  if (pidFile && child.pid) appendFileSync(pidFile, `${child.pid}\n`);
  return child;
}

/** SIGTERM, then SIGKILL if the process has not exited within STOP_TIMEOUT_MS. */
async function stopChild(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await child.exited;
  clearTimeout(timer);
}

async function tail(file, lines = 40) {
  try {
    const text = await readFile(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded by the proxy; Node frames the body itself.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
]);

/** Raw header list (name, value, name, value, …) without hop-by-hop headers; repeats such as
 *  several Set-Cookie lines and the exact values (Location included) are kept unchanged. */
function endToEndHeaders(rawHeaders) {
  const out = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!HOP_BY_HOP.has(rawHeaders[i].toLowerCase())) out.push(rawHeaders[i], rawHeaders[i + 1]);
  }
  return out;
}

/**
 * A reverse proxy that sends each request to the next backend in turn, so consecutive steps of
 * one OAuth flow land on different Doorman processes. `served[i]` counts requests per backend.
 */
function roundRobinProxy(backendPorts) {
  const served = backendPorts.map(() => 0);
  const log = []; // { backend, method, path } per forwarded request, in order
  let next = 0;
  const agent = new http.Agent({ keepAlive: false });
  const server = http.createServer((req, res) => {
    const index = next;
    next = (next + 1) % backendPorts.length;
    served[index] += 1;
    log.push({ backend: index, method: req.method, path: new URL(req.url, 'http://placeholder').pathname });
    const upstream = http.request(
      {
        host: '127.0.0.1',
        port: backendPorts[index],
        method: req.method,
        path: req.url,
        headers: endToEndHeaders(req.rawHeaders),
        agent,
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode, upstreamRes.statusMessage, endToEndHeaders(upstreamRes.rawHeaders));
        upstreamRes.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`interop proxy: backend ${index} failed: ${err.message}\n`);
    });
    req.pipe(upstream);
  });
  return { server, served, log };
}

/**
 * A stand-in MCP server: it only publishes RFC 9728 metadata naming Doorman as its authorization
 * server, at both the path-inserted location (RFC 9728 §3.1, for resource `/mcp`) and the root
 * location that MCP clients fall back to. Everything else is 404.
 */
function protectedResourceServer(getDocument) {
  return http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://placeholder');
    if (
      req.method === 'GET' &&
      (pathname === '/.well-known/oauth-protected-resource' ||
        pathname === '/.well-known/oauth-protected-resource/mcp')
    ) {
      const body = JSON.stringify(getDocument());
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
}

/**
 * Registers a client as the operator does: `doorman clients register <args>` on the same
 * settings (and so the same Redis) as the servers. Parses the credentials it prints once.
 */
function admin(configFile, cwd, args) {
  const out = spawnSync(doormanBinary, ['--config', configFile, ...args], {
    cwd,
    encoding: 'utf8',
    env: cleanEnv({ RUST_LOG: 'warn' }),
  });
  if (out.status !== 0) {
    throw new Error(`doorman ${args.join(' ')} failed (status ${out.status}): ${out.stderr || out.stdout}`);
  }
  return out.stdout;
}

function operatorClient(configFile, cwd, args) {
  const out = spawnSync(doormanBinary, ['--config', configFile, 'clients', 'register', ...args], {
    cwd,
    encoding: 'utf8',
    env: cleanEnv({ RUST_LOG: 'warn' }),
  });
  if (out.status !== 0) {
    throw new Error(`doorman clients register failed (status ${out.status}): ${out.stderr || out.stdout}`);
  }
  const value = (name) => out.stdout.match(new RegExp(`^${name}:\\s+(\\S+)`, 'm'))?.[1];
  return { client_id: value('client_id'), client_secret: value('client_secret') };
}

/** The [login] table: alice with a password, or the OpenID Provider at `providerIssuer` only. */
function loginConfig(providerIssuer) {
  const q = (s) => JSON.stringify(s);
  if (!providerIssuer) {
    return `[login]
mode = "password"
users = [{ username = ${q(USER.username)}, password_hash = ${q(passwordHash())} }]`;
  }
  return `[login]
mode = "upstream"

[[login.providers]]
id = "test"
name = "Example IdP"
kind = "oidc"
issuer = ${q(providerIssuer)}
client_id = ${q(OP_CLIENT.id)}
client_secret = ${q(OP_CLIENT.secret)}
allowed_domains = ["example.com"]`;
}

/** The Doorman settings file for this environment (every key exists in settings/default.toml);
 *  `extra` is appended (whole TOML sections a suite needs, e.g. `[cimd]`). */
function doormanConfig({ issuer, bindPort, redisSocket, keyPrefix, providerIssuer, extra = '', tokens = '' }) {
  const q = (s) => JSON.stringify(s); // a JSON string is a valid TOML basic string for these values
  return `# Written by tests/interop/lib/harness.mjs
issuer = ${q(issuer)}

[server]
bind = ${q(`127.0.0.1:${bindPort}`)}
static_dir = ${q(path.join(repoRoot, 'static'))}
shutdown_timeout = 2

[storage]
backend = "redis"
redis_url = ${q(`unix://${redisSocket}`)}
key_prefix = ${q(keyPrefix)}

[rate_limit]
enabled = false

# Reuse of a rotated-out refresh token revokes the family at once here, so the suites can show
# it without waiting out the grace period for retries (the integration tests cover that).
[tokens]
refresh_grace = 0
${tokens}

${loginConfig(providerIssuer)}
${extra}`;
}

/**
 * Starts Redis, `processes` Doorman processes (1 or 2) and the protected-resource server;
 * `extraConfig` is TOML appended to every Doorman's settings file.
 * Whatever was started is stopped again if any step fails.
 */
export async function startEnvironment({ processes = 1, login = 'password', extraConfig = '', tokens = '' } = {}) {
  if (processes !== 1 && processes !== 2) throw new Error('processes must be 1 or 2');
  if (!existsSync(doormanBinary)) throw new Error(`${doormanBinary} not found: run cargo build --release`);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'doorman-interop-'));
  const redisSocket = path.join(dir, 'redis.sock');
  const pidFile = path.join(dir, 'pids');
  const watchdog = startWatchdog(dir, pidFile);
  const children = [];
  const servers = [];
  const logFiles = [];
  let proxy;

  const env = {
    dir,
    processes,
    issuer: undefined,
    resource: undefined,
    /** Requests the proxy forwarded to each Doorman process so far (a copy); [] without a proxy. */
    servedBy: () => (proxy ? [...proxy.served] : []),
    /** Every request the proxy forwarded, in order: { backend, method, path }; [] without a proxy. */
    proxyLog: () => (proxy ? [...proxy.log] : []),
    async logTail(lines = 30) {
      const parts = [];
      // Doorman's logs first; Redis says little that matters unless it died.
      const ordered = [...logFiles.filter((f) => !f.endsWith('redis.log')), ...logFiles.filter((f) => f.endsWith('redis.log'))];
      for (const file of ordered) parts.push(`--- ${path.basename(file)} ---\n${await tail(file, lines)}`);
      return parts.join('\n');
    },
    async stop() {
      await Promise.all(servers.map(closeServer));
      // Doorman first (it talks to Redis while shutting down), then Redis.
      await Promise.all(children.filter((c) => c.role === 'doorman').map(stopChild));
      await Promise.all(children.filter((c) => c.role === 'redis').map(stopChild));
      await env.provider?.stop();
      watchdog.kill('SIGKILL');
      if (process.env.INTEROP_KEEP) {
        console.error(`interop: kept ${dir}`);
      } else {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };

  try {
    // 1. A private Redis on a unix socket: no TCP port, no persistence.
    const redisLog = path.join(dir, 'redis.log');
    logFiles.push(redisLog);
    const redis = startChild(
      'redis-server',
      ['--port', '0', '--unixsocket', redisSocket, '--unixsocketperm', '700',
        '--save', '', '--appendonly', 'no', '--dir', dir],
      { logFile: redisLog, cwd: dir, env: process.env, pidFile },
    );
    redis.role = 'redis';
    children.push(redis);
    await waitFor('redis-server', () => redisPing(redisSocket), { abort: () => redis.exitInfo });

    // 2. The protected-resource server, whose URL is the MCP server URL and resource indicator.
    const prm = protectedResourceServer(() => ({
      resource: env.resource,
      authorization_servers: [env.issuer],
    }));
    servers.push(prm);
    env.resource = `http://127.0.0.1:${await listen(prm)}/mcp`;

    // 3. The issuer: the proxy's URL for two processes, the single process's own URL otherwise.
    const backendPorts = [];
    for (let i = 0; i < processes; i += 1) backendPorts.push(await freePort());
    if (processes === 2) {
      proxy = roundRobinProxy(backendPorts);
      servers.push(proxy.server);
      env.issuer = `http://127.0.0.1:${await listen(proxy.server)}`;
    } else {
      env.issuer = `http://127.0.0.1:${backendPorts[0]}`;
    }

    // 4. With upstream sign-in: the OpenID Provider, which must know Doorman's callback.
    let providerIssuer;
    if (login === 'upstream') {
      env.provider = await startOpenIdProvider({ redirectUris: [`${env.issuer}/login/test/callback`] });
      appendFileSync(pidFile, `${env.provider.child.pid}\n`);
      providerIssuer = env.provider.issuer;
    }

    // 5. Doorman processes: same issuer, same Redis, same key prefix; each its own bind port.
    const keyPrefix = `interop:${randomBytes(4).toString('hex')}:`;
    const doormen = [];
    for (const [i, port] of backendPorts.entries()) {
      const configFile = path.join(dir, `doorman-${i}.toml`);
      await writeFile(
        configFile,
        doormanConfig({ issuer: env.issuer, bindPort: port, redisSocket, keyPrefix, providerIssuer, extra: extraConfig, tokens }),
      );
      if (i === 0) {
        env.operatorClient = (args) => operatorClient(configFile, dir, args);
        env.admin = (args) => admin(configFile, dir, args);
      }
      const logFile = path.join(dir, `doorman-${i}.log`);
      logFiles.push(logFile);
      const child = startChild(doormanBinary, ['--config', configFile, 'serve'], {
        logFile,
        cwd: dir,
        env: cleanEnv({ RUST_LOG: process.env.RUST_LOG ?? 'info' }),
        pidFile,
      });
      child.role = 'doorman';
      children.push(child);
      doormen.push(child);
    }
    // /healthz on each process directly (not through the proxy, whose alternation would hide one).
    await Promise.all(
      backendPorts.map((port, i) =>
        waitFor(`doorman process ${i} (port ${port})`, async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, {
          abort: () => doormen[i].exitInfo,
        }),
      ),
    );
    return env;
  } catch (err) {
    const logs = await env.logTail();
    await env.stop();
    err.message += `\n${logs}`;
    throw err;
  }
}

/**
 * Runs `body` and, when it throws, adds the tail of the Doorman logs to the test's diagnostics
 * before rethrowing, so a failure in CI shows what the server said.
 */
export async function withServerLogs(t, env, body) {
  try {
    return await body();
  } catch (err) {
    if (env) t.diagnostic(await env.logTail());
    throw err;
  }
}

/** Label for test names: "(1 process)" or "(2 processes)". */
export const processLabel = (n) => (n === 1 ? '(1 process)' : `(${n} processes)`);
