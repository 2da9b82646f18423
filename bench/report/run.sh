#!/usr/bin/env bash
# Regenerates docs/performance.svg from the measured figures in bench/results/ (ratios.csv and
# load-*.csv), with matplotlib in a virtual environment of its own (bench/report/.venv).
#   bench/report/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
if [ ! -x "$here/.venv/bin/python" ]; then python3 -m venv "$here/.venv"; fi
"$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
"$here/.venv/bin/python" "$here/chart.py" "$root/bench/results" "$root/docs/performance.svg"
