#!/usr/bin/env bash
# Same results at two commits, in one run: GrabCut NoC@85/90 (the shipped click bundle) and the
# DAVIS-2016 dev J from the ground-truth first mask (the shipped OSVOS bundle), each commit
# checked out into its own worktree and imported from there (PYTHONPATH before the editable
# install), the commits alternating on one machine. For changes that must not change results
# (refactors, moves); the native code must be the same at both commits (its build is shared).
#
#   bash scripts/same_results.sh BEFORE AFTER OUT.md [--limit N]
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=$(git rev-parse --short "$1"); AFTER=$(git rev-parse --short "$2"); OUT=$3; shift 3
if ! git diff --quiet "$BEFORE" "$AFTER" -- csrc bindings CMakeLists.txt; then
  echo "same_results: the native code differs between $BEFORE and $AFTER: build each commit itself" >&2
  exit 2
fi
PY=$PWD/.venv/bin/python
DATA=$(realpath "${IVOS_DATA_ROOT:-$PWD/../shared/datasets}")
WORK=$(mktemp -d /tmp/ivos-same-results.XXXXXX)
trap 'for c in "$BEFORE" "$AFTER"; do git worktree remove --force "$WORK/$c" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
for c in "$BEFORE" "$AFTER"; do
  git worktree add -q --detach "$WORK/$c" "$c"
  cp engine/_C*.so "$WORK/$c/engine/"
  ln -s "$WORK/$c/benchmarks" "$WORK/$c/engine/bench"   # setup.py's PACKAGE_DIR, as a path farm
  ln -s "$WORK/$c/export" "$WORK/$c/engine/export"
  mkdir -p "$WORK/path-$c" && ln -s "$WORK/$c/engine" "$WORK/path-$c/ivos"
done
for c in "$BEFORE" "$AFTER"; do
  echo "same_results: $c: GrabCut NoC" >&2
  (cd "$WORK" && PYTHONPATH="$WORK/path-$c" "$PY" -m ivos.bench.cli click --dataset GrabCut --method model \
     --model "$WORK/$c/engine/models/ivos-lite0" --threads 1 --data-root "$DATA" "$@" --json "$WORK/click-$c.json" >/dev/null)
  echo "same_results: $c: DAVIS dev J" >&2
  (cd "$WORK" && PYTHONPATH="$WORK/path-$c" "$PY" -m ivos.bench.cli video --split dev --threads 1 --no-clicks \
     --data-root "$DATA" --json "$WORK/video-$c.json" >/dev/null)
done
"$PY" - "$WORK" "$BEFORE" "$AFTER" "$OUT" "$*" <<'PYEOF'
import json, sys
work, before, after, out, extra = sys.argv[1:]
rows = []
for c in (before, after):
    click = json.load(open(f"{work}/click-{c}.json"))
    click = click.get("results", [click])[0] if "noc90" not in click else click
    video = json.load(open(f"{work}/video-{c}.json"))["summary"]
    rows.append((c, click["noc85"], click["noc90"], click["n_fail90"], video["j_gt_init"]))
same = rows[0][1:] == rows[1][1:]
lines = [f"# Same results before and after: {before} vs {after}", "",
         f"Command: `bash scripts/same_results.sh {before} {after} {out} {extra}`".replace("  `", "`"), "",
         "| commit | GrabCut NoC@85 | NoC@90 | fails @90 | DAVIS dev J (GT first mask) |",
         "|---|---:|---:|---:|---:|"]
lines += [f"| {c} | {a:.2f} | {b:.2f} | {n} | {j:.4f} |" for c, a, b, n, j in rows]
lines += ["", "**Identical.**" if same else "**DIFFERENT**: see the rows above."]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if same else 1)
PYEOF
