// Starts provider.mjs (oidc-provider on loopback) as a child process for the Node suites (interop,
// browser) and resolves once it listens:
//
//   const op = await startOpenIdProvider({ redirectUris: [`${issuer}/login/test/callback`] });
//   op.issuer   – e.g. http://127.0.0.1:41234
//   op.child    – the process (its pid, for clean-up lists)
//   op.log()    – what it printed on standard error
//   await op.stop()
//
// Fails (never skips) when the npm packages are missing: scripts/test runs `npm ci` here first.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The client Doorman is at this provider. */
export const OP_CLIENT = { id: 'doorman', secret: 'doorman-test-secret-0123456789abcdef' };

export async function startOpenIdProvider({ redirectUris, port = 0, idToken = 'ok' }) {
  if (!existsSync(path.join(here, 'node_modules', 'oidc-provider', 'package.json'))) {
    throw new Error(`oidc-provider is not installed: run npm ci in ${here} (scripts/test does)`);
  }
  const args = [path.join(here, 'provider.mjs'), '--port', String(port), '--id-token', idToken,
    '--client-id', OP_CLIENT.id, '--client-secret', OP_CLIENT.secret];
  for (const uri of redirectUris) args.push('--redirect-uri', uri);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const started = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const line = out.split('\n')[0];
      if (out.includes('\n')) {
        try {
          resolve(JSON.parse(line));
        } catch (e) {
          reject(new Error(`provider.mjs printed ${line}: ${e.message}`));
        }
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`provider.mjs exited (${signal ?? code}): ${stderr}`)));
  });
  return {
    ...started,
    child,
    log: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}
