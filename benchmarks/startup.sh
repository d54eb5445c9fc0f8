#!/usr/bin/env bash
# Start-up time of the read commands against `python -c pass` (hyperfine, median).
# Usage: benchmarks/startup.sh [path/to/venv]   (a venv with sdm installed, not editable:
# pip byte-compiles an installed package, as users get it)
set -euo pipefail
venv="${1:-.venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export SDM_HOME="$work/store" SDM_CONFIG_DIR="$work/cfg" SDM_CACHE_DIR="$work/cache"
"$venv/bin/sdm" search realistic >/dev/null   # warm the catalog cache once
hyperfine --warmup 3 --runs 30 --export-markdown "$work/startup.md" --export-json "$work/startup.json" \
  -n 'python -c pass' "$venv/bin/python -c pass" \
  -n 'sdm --help' "$venv/bin/sdm --help" \
  -n 'sdm search realistic' "$venv/bin/sdm search realistic" \
  -n 'sdm info sd15' "$venv/bin/sdm info sd15" \
  -n 'sdm list' "$venv/bin/sdm list" >/dev/null
cat "$work/startup.md"
python3 -c "import json,sys; [print(f\"median {r['command']}: {r['median']*1000:.1f} ms\") for r in json.load(open(sys.argv[1]))['results']]" "$work/startup.json"
for cmd in "search realistic" "info sd15" "list"; do
  # shellcheck disable=SC2086
  if "$venv/bin/python" -X importtime -m sdm $cmd 2>&1 >/dev/null | grep -q ' httpx$'; then
    echo "FAIL: sdm $cmd imports httpx"; exit 1
  fi
done
echo "ok: search, info and list do not import httpx"
