#!/usr/bin/env bash
# The README's first command: installs what is missing, builds Outpost and
# runs it. Arguments go to the outpost binary; with none it shows what the
# binary offers today (`outpost run` arrives with its issue and becomes the
# default then).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DOUTPOST_TESTS=OFF -DOUTPOST_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
if [ $# -eq 0 ]; then
  build/cmd/outpost version
  exec build/cmd/outpost --help
fi
exec build/cmd/outpost "$@"
