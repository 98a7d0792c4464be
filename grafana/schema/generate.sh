#!/usr/bin/env bash
# Grafana's dashboard schema as JSON Schema: the Dashboard type that Grafana generates from its CUE schema and
# publishes in @grafana/schema (npm), turned into JSON Schema by ts-json-schema-generator. Needs node and npm.
#   grafana/schema/generate.sh [GRAFANA_SCHEMA_VERSION]   -> grafana/schema/dashboard.schema.json (committed)
set -euo pipefail
version=${1:-13.2.3}
out="$(cd "$(dirname "$0")" && pwd)/dashboard.schema.json"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "@grafana/schema@$version" >/dev/null
tar xzf "grafana-schema-$version.tgz"
cp package/dist/types/raw/dashboard/x/types.gen.d.ts dashboard.ts
npm install --silent --no-audit --no-fund ts-json-schema-generator@2 typescript@5 >/dev/null
npx ts-json-schema-generator --path dashboard.ts --type Dashboard --no-type-check -o schema.json
python3 - "$version" schema.json "$out" <<'PY'
import json, sys
version, source, target = sys.argv[1:]
schema = json.load(open(source))
schema["$comment"] = f"Dashboard from @grafana/schema {version} (raw/dashboard/x/types.gen.d.ts), by grafana/schema/generate.sh"
json.dump(schema, open(target, "w"), indent=1, sort_keys=True)
PY
echo "$out"
