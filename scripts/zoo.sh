#!/usr/bin/env bash
# The main job: for every spec in specs/, check it, print its summary, write the
# generated PyTorch module (verified by running it on a random batch) and its
# diagram. Everything lands in build/zoo/; the table at the end lists each model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=build/zoo
mkdir -p "$out"
modelc=.venv/bin/modelc
failed=()
for spec in specs/*.model; do
  name=$(basename "$spec" .model)
  echo "==> $spec"
  if "$modelc" summary "$spec" > "$out/$name.summary.txt" &&
     "$modelc" compile "$spec" -o "$out/$name.py" --verify &&
     "$modelc" render "$spec" -o "$out/$name.svg"; then
    head -n 1 "$out/$name.summary.txt"
    grep -E "^(parameters|MACs)" "$out/$name.summary.txt" || true
  else
    failed+=("$spec")
  fi
done
echo
echo "generated modules (.py), summaries (.summary.txt) and diagrams (.svg) are in $out/"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all $(ls specs/*.model | wc -l) specs checked, compiled, verified and drawn"
