#!/usr/bin/env bash
# Builds the kanban-rules plugin into tenant/ and writes its sha256 into
# tenant/tenant.yaml, so that `syncplane serve --tenants plugins/kanban-rules`
# serves the kanban tenant with it. Run from anywhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
# CGO_ENABLED=0: the plugin runs under an address-space limit that cgo's
# 8 MB thread stacks do not fit.
rm -rf "$here/tenant/prisma" && cp -r core/tenant/demo/prisma "$here/tenant/prisma"
CGO_ENABLED=0 go build -o "$here/tenant/kanban-rules" ./plugins/kanban-rules
sum=$(go run ./cmd/syncplane plugin hash "$here/tenant/kanban-rules" | tail -n 1)
sed -i "s/^  sha256: .*/  sha256: $sum/" "$here/tenant/tenant.yaml"
echo "kanban-rules built, sha256 $sum"
