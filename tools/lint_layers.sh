#!/usr/bin/env bash
# Runs the import-linter contracts of pyproject.toml. The editable install exposes the `bss2` namespace only
# through an import hook that import-linter cannot walk, so this builds a plain directory tree
# build/layers/bss2/{hal,comm,graph,exec,ml} of links to the layer folders and points Python at it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tree="$root/build/layers"
rm -rf "$tree"
mkdir -p "$tree/bss2"
for layer in hal comm graph exec ml; do
    ln -s "$root/$layer" "$tree/bss2/$layer"
done
cd "$root"
PYTHONPATH="$tree${PYTHONPATH:+:$PYTHONPATH}" "$root/.venv/bin/lint-imports" --no-cache "$@"
