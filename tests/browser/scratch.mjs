import { startEnvironment } from './lib/env.mjs';
let t0 = Date.now();
const env = await startEnvironment();
console.log('started', Date.now() - t0); t0 = Date.now();
const page = await env.newPage();
await page.goto(env.issuer + '/register');
console.log('goto', Date.now() - t0); t0 = Date.now();
await env.stop();
console.log('stop', Date.now() - t0);
