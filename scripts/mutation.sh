#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut (configuration: [tool.mutmut] in pyproject.toml).
# Not run in CI: a full run takes about an hour on one core.
#
#   scripts/mutation.sh                   all core modules: change patches overlay rules scan workflow auth
#   scripts/mutation.sh workflow rules    only these modules (redline.<name>)
#   scripts/mutation.sh 'patches.xǁ_Seamsǁ*' 'patches.x_label_by_activity*'
#                                         only the mutants of these functions (a glob on mutmut's names)
#
# Each mutant runs the fast unit tests that reach the mutated function (sqlite backend only, see
# pytest_add_cli_args). MUTATION_JOBS sets the number of parallel test processes (default 1: the
# development machines are shared). mutmut works on a copy under mutants/ (git-ignored) and keeps
# its results there: a second run only re-tests what changed. Afterwards this prints the score per
# module and the mutants not killed; `.venv/bin/mutmut show NAME` shows one as a diff.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/mutmut ] || scripts/bootstrap.sh
jobs=${MUTATION_JOBS:-1}
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(change patches overlay rules scan workflow auth)
# naming the mutants makes mutmut test them again: results of earlier runs never stand for new tests
patterns=()
for m in "${modules[@]}"; do
  m=${m#redline.}
  case $m in
    *'*'*) patterns+=("redline.$m") ;;
    *) patterns+=("redline.$m.*") ;;
  esac
done
mkdir -p mutants
echo "mutmut: ${modules[*]}, $jobs process(es); progress in mutants/run.log"
status=0
.venv/bin/mutmut run --max-children "$jobs" "${patterns[@]}" > mutants/run.log 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  tail -c 3000 mutants/run.log | tr '\r' '\n' | tail -n 30
  echo "mutmut run failed (exit $status)" >&2
  exit "$status"
fi
.venv/bin/mutmut results --all true 2>/dev/null | .venv/bin/python -c '
import collections, fnmatch, sys
patterns = sys.argv[1:] or ["*"]
by_module = collections.defaultdict(collections.Counter)
survivors = []
for line in sys.stdin:
    name, _, state = line.strip().rpartition(": ")
    if not name or not any(fnmatch.fnmatch(name, p) for p in patterns):
        continue
    module = ".".join(name.split(".")[:2])
    by_module[module][state] += 1
    if state not in ("killed", "timeout"):
        survivors.append(f"{state:10s} {name}")
total = collections.Counter()
print("%-20s %8s %7s %6s  other" % ("module", "mutants", "killed", "score"))
for module, c in sorted(by_module.items()):
    total.update(c)
    n, k = sum(c.values()), c["killed"] + c["timeout"]
    rest = ", ".join(f"{v} {s}" for s, v in sorted(c.items()) if s not in ("killed", "timeout"))
    print(f"{module:20s} {n:8d} {k:7d} {100 * k / n:5.1f}%  {rest}")
n, k = sum(total.values()), total["killed"] + total["timeout"]
if n:
    print("%-20s %8d %7d %5.1f%%" % ("total", n, k, 100 * k / n))
print("\nnot killed (see `.venv/bin/mutmut show NAME`):")
print("\n".join(survivors) or "none")
' "${patterns[@]}"
