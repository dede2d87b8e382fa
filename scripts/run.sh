#!/usr/bin/env bash
# The README's first command: installs what is missing (scripts/setup.sh:
# packages, podman, the lab image), builds Outpost and starts the whole
# platform on this machine: `outpost run` with its embedded defaults and the
# demo lab template. Arguments go to `outpost run` (see `--help`); a first
# argument that is another subcommand runs that instead
# (`bash scripts/run.sh broker --listen ...`).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DOUTPOST_TESTS=OFF -DOUTPOST_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
case ${1:-} in
broker | detector | post | trigger | events | version | help | --help | -h)
  exec build/cmd/outpost "$@"
  ;;
esac
exec build/cmd/outpost run "$@"
