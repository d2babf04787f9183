#!/bin/sh
# Renders charts/hookguard like `helm template` (no Helm here): values.schema.json check of
# the merged values (python3-jsonschema), then the Go text/template + sprig renderer in
# tests/chart/renderer (built once into target/chart-renderer).
#   tests/chart/render.sh [--kube-version v1.30.0] [-f VALUES.yaml]...  > manifests.yaml
#   tests/chart/render.sh --notes ...                                       # NOTES.txt
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/chart-renderer/renderer"
src="$root/tests/chart/renderer/main.go"
if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
    command -v go >/dev/null || { echo "render.sh: needs go: apt-get install -y golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev" >&2; exit 2; }
    mkdir -p "$root/target/chart-renderer"
    (cd "$root/tests/chart/renderer" && GO111MODULE=off GOPATH=/usr/share/gocode \
        GOCACHE="$root/target/chart-renderer/cache" go build -o "$bin" main.go)
fi
python3 "$root/tests/chart/values-schema.py" --check
# -values prints the merged values; validate them against values.schema.json as Helm does.
# Debian's python3 (where apt installs python3-jsonschema), not a pyenv shim.
"$bin" -chart "$root/charts/hookguard" -values "$@" | "${CHART_PYTHON:-/usr/bin/python3}" -c '
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(json.load(sys.stdin)), key=str)
for e in errors:
    print("values.schema.json: %s: %s" % ("/".join(map(str, e.absolute_path)) or "(root)", e.message), file=sys.stderr)
sys.exit(1 if errors else 0)
' "$root/charts/hookguard/values.schema.json"
exec "$bin" -chart "$root/charts/hookguard" "$@"
