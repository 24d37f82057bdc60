#!/usr/bin/env bash
# The main job: check and summarise every spec in specs/, write the generated
# PyTorch modules to build/zoo/ and verify each one by running it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=build/zoo
mkdir -p "$out"
status=0
for spec in specs/*.model; do
  name=$(basename "$spec" .model)
  echo "==> $spec"
  if .venv/bin/modelc summary "$spec" > "$out/$name.summary.txt" &&
     .venv/bin/modelc compile "$spec" -o "$out/$name.py" --verify; then
    head -n 1 "$out/$name.summary.txt"
    tail -n 2 "$out/$name.summary.txt"
  else
    status=1
  fi
done
echo "generated modules and summaries are in $out/"
exit $status
