// Passkeys in headless Debian Chromium, with a CDP virtual authenticator (ctap2, internal
// transport, resident keys, user verification), on the example page
// tests/browser/passkeys/index.html served at http://localhost:PORT (a secure context), which
// calls the real auth-api binary across origins.
//
//   1. Starts auth-api on 127.0.0.1 with AUTH_WEBAUTHN_RP_ID=localhost and the page's origin
//      in AUTH_WEBAUTHN_ORIGINS and AUTH_CORS_ORIGINS; a fresh SQLite database.
//   2. In the page: sign up with a password, register a passkey (navigator.credentials.create
//      with the API's options), list it, sign out, and sign in with the passkey alone (no
//      email, no password: the authenticator chooses the account).
//   3. A password sign-in of the account (which now has a factor) answers MFA_REQUIRED with
//      passkeyOptions, and the passkey completes it through verifyMfa.
//   4. Another virtual authenticator holding a credential with the same id and user handle
//      but its own key is refused (INVALID_CREDENTIALS), and so is the original after the
//      passkey is deleted.
//
// Run it with tests/browser/run.sh (installs Chromium and the npm packages first).
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
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
const pageHtml = readFileSync(join(here, 'passkeys', 'index.html'));

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};
const log = (message) => console.log(`[passkeys-test] ${message}`);
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

/** The example page, on 127.0.0.1:port (the browser reaches it as http://localhost:port). */
async function pageServer(port) {
  const server = createHttpServer((req, res) => {
    if (req.url === '/favicon.ico') {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(pageHtml);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return `http://localhost:${port}`;
}

async function startApi(pageOrigin) {
  if (!existsSync(binary)) fail(`auth-api binary not found at ${binary}: run \`cargo build -p auth-api\``);
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'auth-passkeys-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  mkdirSync(artifacts, { recursive: true });
  const logPath = join(artifacts, 'auth-api-passkeys.log');
  const logStream = createWriteStream(logPath);
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${join(dataDir, 'auth.db')}`,
    AUTH_MASTER_KEY: randomBytes(32).toString('base64'),
    AUTH_LISTEN: `127.0.0.1:${port}`,
    AUTH_ISSUER: origin,
    AUTH_CORS_ORIGINS: pageOrigin,
    AUTH_WEBAUTHN_RP_ID: 'localhost',
    AUTH_WEBAUTHN_ORIGINS: pageOrigin,
    RUST_LOG: 'info'
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

/** Runs `window.auth[name](...args)` in the page; {ok, value} or {ok: false, code, message}. */
function call(page, name, ...args) {
  return page.evaluate(
    async ({ name, args }) => {
      try {
        return { ok: true, value: await window.auth[name](...args) };
      } catch (error) {
        return { ok: false, code: error.code || error.name, message: error.message, extensions: error.extensions };
      }
    },
    { name, args }
  );
}

async function must(page, name, ...args) {
  const result = await call(page, name, ...args);
  if (!result.ok) fail(`${name} failed: ${result.code}: ${result.message}`);
  return result.value;
}

const AUTHENTICATOR = {
  protocol: 'ctap2',
  transport: 'internal',
  hasResidentKey: true,
  hasUserVerification: true,
  isUserVerified: true,
  automaticPresenceSimulation: true
};

let status = 0;
let page;
try {
  const pagePort = await freePort();
  const pageOrigin = `http://localhost:${pagePort}`;
  const { origin: api, logPath } = await startApi(pageOrigin);
  await pageServer(pagePort);
  log(`API ${api}; page ${pageOrigin}`);

  if (!existsSync(chromiumPath)) fail(`${chromiumPath} not found: apt-get install -y chromium`);
  const profile = mkdtempSync(join(tmpdir(), 'auth-passkeys-chromium-'));
  cleanups.push(() => rmSync(profile, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking']
  });
  cleanups.push(() => context.close());
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30000);
  await page.goto(`${pageOrigin}/?api=${encodeURIComponent(api)}`);
  if (!(await page.evaluate(() => window.isSecureContext && !!window.auth))) {
    fail('the page is not a secure context, or its script did not load');
  }

  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId: laptop } = await cdp.send('WebAuthn.addVirtualAuthenticator', { options: AUTHENTICATOR });

  // Sign up with a password, then add a passkey.
  const email = 'passkey@example.com';
  const password = 'correct horse battery staple 9';
  const account = await must(page, 'signUp', email, password);
  const passkey = await must(page, 'registerPasskey', 'Laptop');
  if (passkey.name !== 'Laptop') fail(`registered passkey: ${JSON.stringify(passkey)}`);
  const listed = await must(page, 'passkeys');
  if (listed.length !== 1 || listed[0].id !== passkey.id) fail(`passkeys: ${JSON.stringify(listed)}`);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId: laptop });
  if (credentials.length !== 1 || !credentials[0].isResidentCredential) {
    fail(`the authenticator holds no resident credential: ${JSON.stringify(credentials)}`);
  }
  const held = credentials[0];
  if (Buffer.from(held.credentialId, 'base64').toString('base64url') !== passkey.credentialId) {
    fail(`credential ids differ: ${held.credentialId} / ${passkey.credentialId}`);
  }
  log(`registered passkey ${passkey.id} (credential ${passkey.credentialId.slice(0, 12)}…, resident)`);

  // Sign out, then in with the passkey alone.
  if ((await must(page, 'signOut')) !== true) fail('signOut did not answer true');
  const signedIn = await must(page, 'signInWithPasskey');
  if (signedIn.user.id !== account.user.id || signedIn.session.method !== 'passkey') {
    fail(`passkey sign-in: ${JSON.stringify(signedIn)}`);
  }
  const me = await must(page, 'me');
  if (me.id !== account.user.id) fail(`me after the passkey sign-in: ${JSON.stringify(me)}`);
  log(`signed in with the passkey alone: session ${signedIn.session.id}, method ${signedIn.session.method}`);

  // As the second factor of a password sign-in: MFA_REQUIRED offers the passkey, and it
  // completes the sign-in.
  await must(page, 'signOut');
  const step = await must(page, 'signIn', email, password);
  if (!step.mfa) fail(`a password sign-in of an account with a passkey issued tokens: ${JSON.stringify(step)}`);
  if (!step.mfa.methods?.includes('passkey') || !step.mfa.passkeyOptions) {
    fail(`MFA_REQUIRED without the passkey: ${JSON.stringify(step.mfa)}`);
  }
  const allowed = step.mfa.passkeyOptions.publicKey.allowCredentials.map((c) => c.id);
  if (!allowed.includes(passkey.credentialId)) fail(`passkeyOptions do not allow the passkey: ${allowed}`);
  const second = await must(page, 'verifyMfaWithPasskey', step.mfa);
  if (second.user.id !== account.user.id) fail(`verifyMfa: ${JSON.stringify(second)}`);
  log(`password + passkey as the second factor: session ${second.session.id} (${second.session.method})`);

  // Another authenticator with a copy of the credential id and user handle, but its own key.
  const [current] = (await cdp.send('WebAuthn.getCredentials', { authenticatorId: laptop })).credentials;
  await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: laptop });
  const { authenticatorId: other } = await cdp.send('WebAuthn.addVirtualAuthenticator', { options: AUTHENTICATOR });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await cdp.send('WebAuthn.addCredential', {
    authenticatorId: other,
    credential: {
      credentialId: held.credentialId,
      isResidentCredential: true,
      rpId: 'localhost',
      privateKey: privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64'),
      userHandle: held.userHandle,
      signCount: 1000
    }
  });
  await must(page, 'signOut').catch(() => {});
  const forged = await call(page, 'signInWithPasskey');
  if (forged.ok || forged.code !== 'INVALID_CREDENTIALS') {
    fail(`a credential from another authenticator was not refused: ${JSON.stringify(forged)}`);
  }
  log(`another authenticator's credential refused: ${forged.code}`);

  // Back on the laptop: delete the passkey, and it never signs in again.
  await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: other });
  const { authenticatorId: again } = await cdp.send('WebAuthn.addVirtualAuthenticator', { options: AUTHENTICATOR });
  await cdp.send('WebAuthn.addCredential', { authenticatorId: again, credential: current });
  const back = await must(page, 'signInWithPasskey');
  if (back.user.id !== account.user.id) fail(`the laptop's credential no longer signs in: ${JSON.stringify(back)}`);
  if ((await must(page, 'deletePasskey', passkey.id)) !== true) fail('deletePasskey did not answer true');
  await must(page, 'signOut');
  const deleted = await call(page, 'signInWithPasskey');
  if (deleted.ok || deleted.code !== 'INVALID_CREDENTIALS') {
    fail(`a deleted passkey signed in: ${JSON.stringify(deleted)}`);
  }
  log(`deleted passkey refused: ${deleted.code}; log ${logPath}`);
  await page.screenshot({ path: join(artifacts, 'passkeys.png') });
  log('PASS');
} catch (e) {
  status = 1;
  console.error(`[passkeys-test] FAIL: ${e instanceof Failure ? e.message : e.stack || e}`);
  if (page) await page.screenshot({ path: join(artifacts, 'passkeys-failure.png') }).catch(() => {});
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
