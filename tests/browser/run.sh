#!/usr/bin/env bash
# The browser tests (GraphiQL, CORS from pages on other ports, passkeys with a virtual authenticator): installs Debian's chromium if needed, the pinned npm packages,
# and runs graphiql.test.mjs against the real auth-api binary.
#
#   tests/browser/run.sh                      # uses <repo>/target/debug/auth-api
#   AUTH_API_BIN=target/release/auth-api tests/browser/run.sh
#   AUTH_API_URL=http://127.0.0.1:8080 tests/browser/run.sh   # a server already running
#
# Artifacts (git-ignored): tests/artifacts/graphiql.png, graphiql-final.png,
# graphiql-failure.png (on failure) and auth-api.log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
  echo "installing chromium from Debian packages" >&2
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium
fi
"${CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null || true

cd "$here"
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi

node graphiql.test.mjs
# CORS: a page on another localhost port signs in across origins (and an unlisted one cannot).
node cors.test.mjs
# Passkeys: the example page with a virtual authenticator registers one and signs in with it.
exec node passkeys.test.mjs
