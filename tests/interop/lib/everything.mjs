// The example MCP server behind the gate: @modelcontextprotocol/server-everything (exact version in
// package.json) in streamable HTTP mode on a free loopback port, and the gate settings for it.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const entry = path.join(here, '..', 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');

async function freePort() {
  const probe = net.createServer();
  await new Promise((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * Starts server-everything; resolves with { url, logTail(), stop() } once it answers HTTP.
 * It listens on every interface by default; the port is free and loopback-only tests reach it
 * at 127.0.0.1.
 */
export async function startEverything() {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doorman-everything-'));
  const logFile = path.join(dir, 'everything.log');
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, [entry, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited;
  child.on('exit', (code, signal) => {
    exited = `server-everything exited (${code ?? signal})`;
  });
  process.on('exit', () => child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}/mcp`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) throw new Error(exited);
    try {
      await fetch(url); // any answer (400 without a session) means it listens
      break;
    } catch {
      if (Date.now() > deadline) throw new Error('server-everything did not start in 20 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    url,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
      log.end();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The TOML appended to Doorman's settings: the gate at /mcp in front of `upstream`; `get-env`
 *  (it shows the server's environment) needs the extra scope `admin`. */
export function gateConfig(upstream) {
  return `
[scopes]
supported = ["mcp", "offline_access", "admin"]

[[gate.routes]]
path = "/mcp"
upstream = ${JSON.stringify(upstream)}
name = "Everything"
scopes = ["mcp"]
[gate.routes.tools]
"get-env" = ["admin"]
`;
}
