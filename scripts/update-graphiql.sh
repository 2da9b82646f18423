#!/usr/bin/env bash
# Refresh api/assets/graphiql from the pinned npm packages.
#
# The pins live in tests/browser/package.json (devDependencies graphiql, react, react-dom),
# the same pins the browser test compares the committed files against. To move to another
# version: change the pin there, run this script, run `npm install` in tests/browser (to
# update package-lock.json), run tests/browser/run.sh, and commit the lot.
#
# Needs node and npm with access to the npm registry; nothing else.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo/api/assets/graphiql"
pins="$repo/tests/browser/package.json"

pin() {
  node -e 'const p = require(process.argv[1]); const v = p.devDependencies[process.argv[2]];
    if (!/^\d+\.\d+\.\d+$/.test(v || "")) { console.error(`no exact pin for ${process.argv[2]} in ${process.argv[1]}`); process.exit(1); }
    console.log(v)' "$pins" "$1"
}

graphiql="$(pin graphiql)"
react="$(pin react)"
react_dom="$(pin react-dom)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# name@version  file-in-package  file-in-assets
files=(
  "graphiql@$graphiql     graphiql.min.js                  graphiql.min.js"
  "graphiql@$graphiql     graphiql.min.css                 graphiql.min.css"
  "react@$react           umd/react.production.min.js      react.production.min.js"
  "react-dom@$react_dom   umd/react-dom.production.min.js  react-dom.production.min.js"
)

mkdir -p "$dest"
{
  echo "# Pinned npm packages the files in this directory are copied from, unchanged."
  echo "# Written by scripts/update-graphiql.sh; checked by tests/browser (byte for byte)."
  echo "# package@version  file-in-package  file-here  sha256"
} > "$tmp/VERSIONS"

declare -A unpacked=()
for line in "${files[@]}"; do
  read -r spec src out <<<"$line"
  if [[ -z "${unpacked[$spec]:-}" ]]; then
    mkdir -p "$tmp/$spec"
    echo "npm pack $spec" >&2
    tarball="$(cd "$tmp/$spec" && npm pack --silent "$spec" 2>/dev/null | tail -n 1)"
    tar -xzf "$tmp/$spec/$tarball" -C "$tmp/$spec"
    unpacked[$spec]=1
  fi
  cp "$tmp/$spec/package/$src" "$dest/$out"
  sum="$(sha256sum "$dest/$out" | cut -d' ' -f1)"
  printf '%s %s %s %s\n' "$spec" "$src" "$out" "$sum" >> "$tmp/VERSIONS"
done

cp "$tmp/VERSIONS" "$dest/VERSIONS"
echo "updated $dest:" >&2
cat "$dest/VERSIONS" >&2
