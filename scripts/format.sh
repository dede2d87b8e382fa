#!/usr/bin/env bash
# Formats the C sources with the committed .clang-format, or with --check
# fails (listing the files) when any of them is not formatted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v -e '^build' -e node_modules -e '^bpf/vmlinux.h$' || true)
((${#files[@]})) || exit 0
if [ "${1:-}" = "--check" ]; then
  if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/outpost-format.$$; then
    grep -oE '^[^ :]+\.[ch]:[0-9]+:[0-9]+: ' /tmp/outpost-format.$$ | cut -d: -f1 | sort -u | sed 's/^/not formatted: /' >&2
    rm -f /tmp/outpost-format.$$
    echo "format: run scripts/format.sh to fix" >&2
    exit 1
  fi
  rm -f /tmp/outpost-format.$$
  echo "format: ${#files[@]} files ok"
else
  clang-format -i "${files[@]}"
fi
