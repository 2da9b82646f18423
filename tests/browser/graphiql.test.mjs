// End-to-end test of the GraphiQL page of auth-api in headless Debian Chromium.
//
//   1. The committed api/assets/graphiql files equal, byte for byte, the files of the
//      pinned npm packages installed in node_modules (and VERSIONS agrees with the pins).
//   2. Starts the real auth-api binary on a free port with a fresh SQLite database
//      (AUTH_API_BIN, default <repo>/target/debug/auth-api; or AUTH_API_URL to test a
//      server that is already running).
//   3. Drives /usr/bin/chromium (CHROMIUM to override) through playwright-core with a
//      fresh profile, recording every request: any failed request, HTTP error, off-origin
//      request, CSP violation or page error fails the test.
//   4. Opens /graphql, waits for the editor, opens the docs explorer and finds `signUp`,
//      runs the example document: SignUp (asserts an accessToken in the result pane), then
//      the "use tokens" button, Me, SessionEvents over WebSocket (a sign-in elsewhere shows
//      up as CREATED; stopping it frees the subscription on the server), Sessions, Refresh
//      and SignOut.
//   5. Saves a screenshot to tests/artifacts/graphiql.png (graphiql-failure.png on failure).
//   6. Starts the binary again with AUTH_GRAPHIQL=false: no page, no introspection.
//
// Run it with tests/browser/run.sh (installs Chromium and the npm packages first).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getIntrospectionQuery } from 'graphql';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const assetsDir = join(repo, 'api', 'assets', 'graphiql');
const artifacts = join(repo, 'tests', 'artifacts');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const binary = process.env.AUTH_API_BIN || join(repo, 'target', 'debug', 'auth-api');
const STEP_TIMEOUT = Number(process.env.STEP_TIMEOUT_MS || 30000);

/** A test failure with a message meant for people. */
class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};
const log = (message) => console.log(`[graphiql-test] ${message}`);
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

const cleanups = [];

// ---- 1. pinned assets ------------------------------------------------------------------

/** Files in api/assets/graphiql that are ours, not copies of npm files. */
const OWN_FILES = new Set(['VERSIONS', 'init.js', 'page.css']);

function checkPinnedAssets() {
  const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
  const versionsFile = join(assetsDir, 'VERSIONS');
  if (!existsSync(versionsFile)) fail(`${versionsFile} is missing: run scripts/update-graphiql.sh`);
  const entries = readFileSync(versionsFile, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [spec, src, out, sum] = line.split(/\s+/);
      const at = spec.lastIndexOf('@');
      return { name: spec.slice(0, at), version: spec.slice(at + 1), src, out, sum };
    });
  if (entries.length === 0) fail('VERSIONS lists no files');

  const problems = [];
  const copied = new Set();
  for (const { name, version, src, out, sum } of entries) {
    copied.add(out);
    const pinned = pkg.devDependencies?.[name];
    if (pinned !== version) {
      problems.push(`${name}: VERSIONS says ${version}, tests/browser/package.json pins ${pinned}`);
      continue;
    }
    const installedPkg = join(here, 'node_modules', name, 'package.json');
    if (!existsSync(installedPkg)) {
      problems.push(`${name} is not installed in tests/browser/node_modules (run npm ci)`);
      continue;
    }
    const installed = JSON.parse(readFileSync(installedPkg, 'utf8')).version;
    if (installed !== version) {
      problems.push(`${name}: node_modules has ${installed}, the pin is ${version} (run npm ci)`);
      continue;
    }
    const upstream = readFileSync(join(here, 'node_modules', name, src));
    const committedPath = join(assetsDir, out);
    if (!existsSync(committedPath)) {
      problems.push(`api/assets/graphiql/${out} is missing`);
      continue;
    }
    const committed = readFileSync(committedPath);
    if (!upstream.equals(committed)) {
      problems.push(
        `api/assets/graphiql/${out} differs from ${name}@${version}/${src} ` +
          `(${committed.length} vs ${upstream.length} bytes): run scripts/update-graphiql.sh`
      );
    } else if (sum && sum !== sha256(committed)) {
      problems.push(`VERSIONS has a stale sha256 for ${out}: run scripts/update-graphiql.sh`);
    }
  }
  for (const file of readdirSync(assetsDir)) {
    if (!copied.has(file) && !OWN_FILES.has(file)) problems.push(`unexpected file api/assets/graphiql/${file}`);
  }
  if (problems.length) fail(`committed GraphiQL assets do not match the pinned npm packages:\n  - ${problems.join('\n  - ')}`);
  log(`assets: ${entries.length} files equal the pinned npm files (${entries.map((e) => `${e.name}@${e.version}`).filter((v, i, a) => a.indexOf(v) === i).join(', ')})`);
}

// ---- 2. the real binary ----------------------------------------------------------------

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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer(extraEnv = {}, label = 'auth-api') {
  if (process.env.AUTH_API_URL && !Object.keys(extraEnv).length) {
    const origin = new URL(process.env.AUTH_API_URL).origin;
    log(`using the running server at ${origin} (AUTH_API_URL)`);
    await waitHealthy(origin, null);
    return { origin, stop: async () => {} };
  }
  if (!existsSync(binary)) fail(`auth-api binary not found at ${binary}: run \`cargo build -p auth-api\` or set AUTH_API_BIN`);
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'auth-graphiql-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  mkdirSync(artifacts, { recursive: true });
  const logPath = join(artifacts, `${label}.log`);
  const logStream = createWriteStream(logPath);
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${join(dataDir, 'auth.db')}`,
    AUTH_MASTER_KEY: randomBytes(32).toString('base64'),
    AUTH_LISTEN: `127.0.0.1:${port}`,
    AUTH_ISSUER: origin,
    RUST_LOG: process.env.RUST_LOG || 'info'
  };
  delete env.AUTH_GRAPHIQL; // the default (on), unless extraEnv says otherwise
  delete env.AUTH_INTROSPECTION;
  Object.assign(env, extraEnv);
  log(`starting ${binary} on ${origin}${Object.keys(extraEnv).length ? ` with ${JSON.stringify(extraEnv)}` : ''} (log: ${logPath})`);
  const child = spawn(binary, ['serve'], { env, cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(logStream);
  child.stderr.pipe(logStream);
  const exited = { value: null };
  child.on('exit', (code, signal) => {
    exited.value = signal ? `signal ${signal}` : `code ${code}`;
  });
  const stop = async () => {
    if (exited.value === null) {
      child.kill('SIGTERM');
      for (let i = 0; i < 50 && exited.value === null; i++) await sleep(100);
      if (exited.value === null) child.kill('SIGKILL');
    }
  };
  cleanups.push(stop);
  await waitHealthy(origin, () => {
    if (exited.value !== null) {
      const tail = readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n');
      fail(`auth-api exited (${exited.value}) before answering /healthz; last log lines:\n${tail}`);
    }
  });
  return { origin, stop };
}

async function waitHealthy(origin, check) {
  const deadline = Date.now() + 60000;
  let last = '';
  while (Date.now() < deadline) {
    check?.();
    try {
      const res = await fetch(`${origin}/healthz`);
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e.cause?.code || e.message;
    }
    await sleep(200);
  }
  fail(`${origin}/healthz did not answer within 60 s (last: ${last})`);
}

// ---- 3.-5. the browser -----------------------------------------------------------------

async function browse(origin) {
  if (!existsSync(chromiumPath)) fail(`${chromiumPath} not found: apt-get install -y chromium (tests/browser/run.sh does)`);
  const profile = mkdtempSync(join(tmpdir(), 'auth-graphiql-chromium-'));
  cleanups.push(() => rmSync(profile, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync'
    ],
    viewport: { width: 1400, height: 900 }
  });
  cleanups.push(() => context.close());

  const wsOrigin = origin.replace(/^http/, 'ws');
  const requests = [];
  const problems = [];
  const onOrigin = (url) => {
    if (url.startsWith('data:')) return true;
    try {
      const u = new URL(url);
      return u.origin === origin || u.origin === wsOrigin;
    } catch {
      return false;
    }
  };
  context.on('request', (req) => {
    requests.push(`${req.method()} ${req.url()}`);
    if (!onOrigin(req.url())) problems.push(`request outside the service: ${req.method()} ${req.url()}`);
  });
  context.on('requestfailed', (req) => {
    problems.push(`failed request: ${req.method()} ${req.url()} (${req.failure()?.errorText})`);
  });
  context.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
  });
  // CSP violations are reported to the page; collect them where the test can read them.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });

  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT);
  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('websocket', (ws) => {
    requests.push(`WS ${ws.url()}`);
    if (!onOrigin(ws.url())) problems.push(`WebSocket outside the service: ${ws.url()}`);
  });

  const checkClean = async (when) => {
    const csp = await page.evaluate(() => window.__cspViolations || []).catch(() => []);
    const all = [...problems, ...csp.map((v) => `CSP violation: ${v}`)];
    if (all.length) {
      fail(`${when}:\n  - ${all.join('\n  - ')}\nrequests so far:\n  ${requests.join('\n  ')}\nconsole errors:\n  ${consoleErrors.join('\n  ') || '(none)'}`);
    }
  };

  try {
    await run(page, origin, checkClean);
  } catch (e) {
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'graphiql-failure.png'), fullPage: true }).catch(() => {});
    if (!(e instanceof Failure)) {
      e.message += `\nrequests so far:\n  ${requests.join('\n  ')}\nproblems:\n  ${problems.join('\n  ') || '(none)'}\nconsole errors:\n  ${consoleErrors.join('\n  ') || '(none)'}`;
    }
    throw e;
  }
  log(`${requests.length} requests, all to ${origin}, none failed; no CSP violations, no page errors`);
}

/** The text of a CodeMirror 5 editor (the whole document, not only what is rendered). */
const editorValue = (page, selector) =>
  page.evaluate((sel) => {
    const el = document.querySelector(sel);
    if (!el) return null;
    return el.CodeMirror ? el.CodeMirror.getValue() : el.innerText;
  }, selector);

const RESULT = '.graphiql-response .CodeMirror';

/** Runs one operation of the document through the execute button's operation picker. */
async function runOperation(page, name, expect) {
  const before = await editorValue(page, RESULT);
  await page.locator('.graphiql-execute-button').click();
  const item = page.getByRole('menuitem', { name, exact: true });
  await item.waitFor({ state: 'visible' }).catch(() => fail(`the operation picker does not offer ${name}`));
  await item.click();
  let value = '';
  const deadline = Date.now() + STEP_TIMEOUT;
  while (Date.now() < deadline) {
    value = (await editorValue(page, RESULT)) || '';
    if (value && value !== before && !(await page.locator('.graphiql-execute-button svg.graphiql-spin').count())) {
      const stable = value;
      await sleep(100);
      if ((await editorValue(page, RESULT)) === stable) break;
    }
    await sleep(100);
  }
  let json;
  try {
    json = JSON.parse(value);
  } catch {
    fail(`${name}: the result pane does not hold JSON: ${value.slice(0, 500)}`);
  }
  if (json.errors) fail(`${name} answered errors: ${JSON.stringify(json.errors)}`);
  for (const text of expect) {
    if (!value.includes(text)) fail(`${name}: the result pane lacks ${JSON.stringify(text)}:\n${value}`);
  }
  log(`${name}: result pane shows ${expect.map((t) => JSON.stringify(t)).join(', ')}`);
  return json;
}

/** The subscriptions this server holds, from its /metrics. */
async function openSubscriptions(origin) {
  const text = await fetch(`${origin}/metrics`).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith('auth_subscriptions_active '));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** Runs the example subscription on the page: a sign-in elsewhere shows up as CREATED. */
async function runSubscription(page, origin) {
  await page.locator('.graphiql-execute-button').click();
  const item = page.getByRole('menuitem', { name: 'SessionEvents', exact: true });
  await item.waitFor({ state: 'visible' }).catch(() => fail('the operation picker does not offer SessionEvents'));
  await item.click();
  let deadline = Date.now() + STEP_TIMEOUT;
  while ((await openSubscriptions(origin)) < 1) {
    if (Date.now() > deadline) fail('SessionEvents: the server never held the page\'s subscription');
    await sleep(100);
  }
  // Another device signs in: the page hears of the new session.
  const other = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Tenant': 'default' },
    body: JSON.stringify({
      query: 'mutation { signIn(input: {email: "ada@example.com", password: "correct horse battery staple"}) { session { id } } }'
    })
  }).then((r) => r.json());
  const sessionId = other.data?.signIn?.session?.id;
  if (!sessionId) fail(`SessionEvents: the sign-in elsewhere failed: ${JSON.stringify(other)}`);
  let value = '';
  deadline = Date.now() + STEP_TIMEOUT;
  while (!(value.includes('"CREATED"') && value.includes(sessionId))) {
    if (Date.now() > deadline) fail(`SessionEvents: the result pane never showed CREATED for ${sessionId}:\n${value}`);
    await sleep(100);
    value = (await editorValue(page, RESULT)) || '';
  }
  log(`SessionEvents: result pane shows "CREATED" for ${sessionId}`);
  // ■ stops it; the server lets go of the subscription.
  await page.locator('.graphiql-execute-button').click();
  deadline = Date.now() + STEP_TIMEOUT;
  while ((await openSubscriptions(origin)) > 0) {
    if (Date.now() > deadline) fail('SessionEvents: stopping did not end the subscription on the server');
    await sleep(100);
  }
  log('SessionEvents: stopped, the server holds no subscription');
}

async function run(page, origin, checkClean) {
  const url = `${origin}/graphql`;
  log(`opening ${url}`);
  const response = await page.goto(url, { waitUntil: 'load' });
  const headers = response.headers();
  const csp = headers['content-security-policy'] || '';
  for (const directive of ["script-src 'self'", "style-src 'self'", "connect-src 'self'"]) {
    if (!csp.includes(directive)) fail(`the page's CSP lacks ${directive}: ${JSON.stringify(csp)}`);
  }
  if (headers['x-content-type-options'] !== 'nosniff') fail('the page lacks X-Content-Type-Options: nosniff');
  if (headers['referrer-policy'] !== 'no-referrer') fail('the page lacks Referrer-Policy: no-referrer');

  await page
    .locator('.graphiql-query-editor .CodeMirror')
    .waitFor({ state: 'visible' })
    .catch(() => fail('the GraphiQL query editor did not appear'));
  const doc = await editorValue(page, '.graphiql-query-editor .CodeMirror');
  for (const op of ['SignUp', 'SignIn', 'Me', 'SessionEvents', 'Sessions', 'Refresh', 'SignOut']) {
    if (!new RegExp(`(query|mutation|subscription) ${op}\\b`).test(doc || '')) fail(`the example document lacks operation ${op}`);
  }
  const headersPane = await page.evaluate(() =>
    [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')].map((el) => el.CodeMirror.getValue()).join('\n')
  );
  if (!headersPane.includes('"X-Tenant": "default"')) fail(`the headers pane is not prefilled with X-Tenant: ${headersPane}`);
  log('editor loaded with the example document and the X-Tenant header');

  // GraphiQL's docs need the standard introspection query (15 fields deep) to pass the
  // server's depth and complexity limits: say so plainly if it does not.
  const introspection = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Tenant': 'default' },
    body: JSON.stringify({ query: getIntrospectionQuery({ inputValueDeprecation: true, schemaDescription: true }) })
  })
    .then((r) => r.json())
    .catch((e) => ({ errors: [{ message: String(e) }] }));
  if (introspection.errors || !introspection.data?.__schema) {
    fail(
      `the standard introspection query (what GraphiQL sends for its docs) fails: ${JSON.stringify(introspection.errors || introspection.data)}` +
        ' (is introspection on? the query is 15 fields deep and has about 230 fields: the schema depth/complexity limits must allow it)'
    );
  }

  // Documentation explorer: shows the schema (introspection through the page's fetcher).
  await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
  const explorer = page.locator('.graphiql-doc-explorer');
  await explorer.waitFor({ state: 'visible' }).catch(() => fail('the documentation explorer did not open'));
  await explorer
    .locator('.graphiql-doc-explorer-type-name', { hasText: /^Mutation$/ })
    .first()
    .click()
    .catch(() => fail('the documentation explorer does not show the Mutation type (is introspection on?)'));
  await explorer
    .getByText('signUp', { exact: true })
    .first()
    .waitFor({ state: 'visible' })
    .catch(() => fail('the documentation explorer does not list signUp under Mutation'));
  log('docs explorer: Mutation lists signUp');
  await page.getByRole('button', { name: 'Hide Documentation Explorer' }).click().catch(() => {});

  await runOperation(page, 'SignUp', ['"accessToken"', '"refreshToken"', 'ada@example.com']);
  mkdirSync(artifacts, { recursive: true });
  const shot = join(artifacts, 'graphiql.png');
  await page.screenshot({ path: shot });
  log(`screenshot: ${shot}`);
  await checkClean('after SignUp');

  // The "use tokens" button puts the access token into the headers pane.
  const useTokens = page.locator('[data-testid="use-tokens"]');
  await useTokens.click().catch(() => fail('the "use tokens" toolbar button is missing or stays disabled after SignUp'));
  const afterHeaders = await page.evaluate(() =>
    [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')].map((el) => el.CodeMirror.getValue()).join('\n')
  );
  if (!/"Authorization": "Bearer [^"]+"/.test(afterHeaders)) fail(`"use tokens" did not set the Authorization header:\n${afterHeaders}`);
  if (!afterHeaders.includes('"X-Tenant": "default"')) fail(`"use tokens" lost the X-Tenant header:\n${afterHeaders}`);
  log('"use tokens" set Authorization: Bearer … and $refreshToken');

  await runOperation(page, 'Me', ['ada@example.com', '"display": "Ada"']);
  await runSubscription(page, origin);
  await runOperation(page, 'Sessions', ['"current": true']);
  await runOperation(page, 'Refresh', ['"accessToken"']);
  await page.locator('[data-testid="use-tokens"]').click();
  await runOperation(page, 'SignIn', ['"accessToken"']);
  await runOperation(page, 'SignOut', ['"signOut": true']);
  await page.screenshot({ path: join(artifacts, 'graphiql-final.png') });
  await checkClean('at the end');
}

// ---- 6. AUTH_GRAPHIQL=false ----------------------------------------------------------

async function checkTurnedOff() {
  if (process.env.AUTH_API_URL) {
    log('skipping the AUTH_GRAPHIQL=false check (AUTH_API_URL: no binary to start)');
    return;
  }
  const { origin, stop } = await startServer({ AUTH_GRAPHIQL: 'false' }, 'auth-api-graphiql-off');
  const res = await fetch(`${origin}/graphql`, { headers: { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  const body = await res.text();
  if ((res.headers.get('content-type') || '').includes('text/html') || body.includes('GraphiQL')) {
    fail(`with AUTH_GRAPHIQL=false, GET /graphql from a browser still answers the page (HTTP ${res.status})`);
  }
  const asset = await fetch(`${origin}/graphiql/init.js`);
  const introspection = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ query: '{ __schema { queryType { name } } }' })
  }).then((r) => r.json());
  if (!introspection.errors && introspection.data?.__schema) fail(`with AUTH_GRAPHIQL=false, introspection still answers: ${JSON.stringify(introspection)}`);
  log(`AUTH_GRAPHIQL=false: GET /graphql answers HTTP ${res.status} ${res.headers.get('content-type')}, introspection refused; assets answer HTTP ${asset.status}`);
  await stop();
}

// ---- main ------------------------------------------------------------------------------

let status = 0;
try {
  checkPinnedAssets();
  const { origin, stop } = await startServer();
  await browse(origin);
  await stop();
  await checkTurnedOff();
  log('PASS');
} catch (e) {
  status = 1;
  console.error(`[graphiql-test] FAIL: ${e instanceof Failure ? e.message : e.stack || e}`);
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
