// CORS in headless Debian Chromium: a single-page app on another localhost port calls the
// real auth-api binary across origins.
//
//   1. Starts auth-api (AUTH_API_BIN, default <repo>/target/debug/auth-api) on a free port
//      with AUTH_CORS_ORIGINS naming one page origin, a fresh SQLite database.
//   2. Serves a blank page on two more ports: the listed origin and an unlisted one.
//   3. From each page, Chromium runs fetch() to the API: signUp, then signIn with
//      Authorization, Content-Type and X-Tenant headers (so the browser sends a real
//      preflight). The listed page gets tokens; the unlisted page's fetch fails with the
//      browser's CORS error, and the API saw its preflight but never its request.
//
// Run it with tests/browser/run.sh (installs Chromium and the npm packages first).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const artifacts = join(repo, 'tests', 'artifacts');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const binary = process.env.AUTH_API_BIN || join(repo, 'target', 'debug', 'auth-api');

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};
const log = (message) => console.log(`[cors-test] ${message}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cleanups = [];

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** A blank page on 127.0.0.1:port; records nothing, serves the same HTML for any path. */
async function pageServer(port) {
  const server = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>frontend</title><p>frontend</p>');
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${port}`;
}

async function startApi(allowed) {
  if (!existsSync(binary)) fail(`auth-api binary not found at ${binary}: run \`cargo build -p auth-api\``);
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'auth-cors-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  mkdirSync(artifacts, { recursive: true });
  const logPath = join(artifacts, 'auth-api-cors.log');
  const logStream = createWriteStream(logPath);
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${join(dataDir, 'auth.db')}`,
    AUTH_MASTER_KEY: randomBytes(32).toString('base64'),
    AUTH_LISTEN: `127.0.0.1:${port}`,
    AUTH_ISSUER: origin,
    AUTH_CORS_ORIGINS: allowed,
    RUST_LOG: 'info,tower_http=debug'
  };
  const child = spawn(binary, ['serve'], { env, cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(logStream);
  child.stderr.pipe(logStream);
  let exited = null;
  child.on('exit', (code, signal) => (exited = signal || code));
  cleanups.push(async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      for (let i = 0; i < 50 && exited === null; i++) await sleep(100);
      if (exited === null) child.kill('SIGKILL');
    }
  });
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    if (exited !== null) fail(`auth-api exited (${exited}): ${readFileSync(logPath, 'utf8').slice(-2000)}`);
    try {
      if ((await fetch(`${origin}/healthz`)).ok) return { origin, logPath };
    } catch {
      /* not up yet */
    }
    await sleep(200);
  }
  fail(`${origin}/healthz did not answer within 60 s`);
}

/** In the page: signUp, then signIn with the three CORS request headers. */
function crossOriginSignIn({ api, email }) {
  const call = (query, variables) =>
    fetch(`${api}/graphql`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Tenant': 'default',
        Authorization: 'Bearer not-a-token-yet'
      },
      body: JSON.stringify({ query, variables })
    }).then((r) => r.json());
  const password = 'correct horse battery staple 9';
  return (async () => {
    try {
      const up = await call(
        'mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { user { id } } }',
        { e: email, p: password }
      );
      const signIn = await call(
        'mutation($e: String!, $p: String!) { signIn(input: {email: $e, password: $p}) { accessToken user { id } } }',
        { e: email, p: password }
      );
      return { ok: true, up, signIn };
    } catch (e) {
      return { ok: false, error: String(e) };
    }
  })();
}

let status = 0;
try {
  const listedPort = await freePort();
  const otherPort = await freePort();
  const listed = `http://127.0.0.1:${listedPort}`;
  const { origin: api, logPath } = await startApi(listed);
  await pageServer(listedPort);
  const other = await pageServer(otherPort);
  log(`API ${api}; listed page ${listed}; unlisted page ${other}`);

  if (!existsSync(chromiumPath)) fail(`${chromiumPath} not found: apt-get install -y chromium`);
  const profile = mkdtempSync(join(tmpdir(), 'auth-cors-chromium-'));
  cleanups.push(() => rmSync(profile, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking']
  });
  cleanups.push(() => context.close());
  const seen = [];
  context.on('request', (req) => seen.push(`${req.method()} ${req.url()}`));
  const page = context.pages()[0] || (await context.newPage());

  // The listed origin: a preflight, then the request, and tokens come back.
  await page.goto(`${listed}/`);
  const good = await page.evaluate(crossOriginSignIn, { api, email: 'spa@example.com' });
  if (!good.ok) fail(`the listed origin's cross-origin signIn failed: ${good.error}`);
  if (good.up.errors) fail(`signUp from the listed origin: ${JSON.stringify(good.up)}`);
  const token = good.signIn?.data?.signIn?.accessToken;
  if (!token || good.signIn.data.signIn.user.id !== good.up.data.signUp.user.id) {
    fail(`signIn from the listed origin returned no token for the user: ${JSON.stringify(good.signIn)}`);
  }
  log(`listed origin: signUp and signIn across origins, access token of ${token.length} characters`);

  // The unlisted origin: the browser refuses after the preflight.
  await page.goto(`${other}/`);
  const bad = await page.evaluate(crossOriginSignIn, { api, email: 'evil@example.com' });
  if (bad.ok) fail(`an unlisted origin read the API's answer: ${JSON.stringify(bad)}`);
  log(`unlisted origin: fetch refused by the browser (${bad.error})`);

  // The API saw the unlisted page's preflight and refused it: no account was created.
  const check = await fetch(`${api}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      query: 'mutation($e: String!, $p: String!) { signIn(input: {email: $e, password: $p}) { accessToken } }',
      variables: { e: 'evil@example.com', p: 'correct horse battery staple 9' }
    })
  }).then((r) => r.json());
  if (check.data?.signIn) fail('the unlisted origin created an account');
  const preflights = seen.filter((r) => r.startsWith('OPTIONS'));
  log(`requests seen by the browser: ${seen.length} (${preflights.length} preflights); log ${logPath}`);
  log('PASS');
} catch (e) {
  status = 1;
  console.error(`[cors-test] FAIL: ${e instanceof Failure ? e.message : e.stack || e}`);
} finally {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch {
      /* best effort */
    }
  }
}
process.exit(status);
