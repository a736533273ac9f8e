#!/usr/bin/env bash
# Builds Dex (the OIDC provider the identity tests run against) from the Go
# module proxy and caches the binary outside the repository, keyed by the
# module version pinned in this directory's go.mod. Prints the binary's path.
# Dex lives in its own module so its dependencies never enter loggate's go.mod.
set -euo pipefail
cd "$(dirname "$0")"
version=$(go list -m -f '{{.Version}}' github.com/dexidp/dex)
cache="${LOGGATE_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/loggate-tools}/dex/$version"
bin="$cache/dex"
if [ ! -x "$bin" ]; then
	mkdir -p "$cache"
	echo "building Dex $version into $cache (about two minutes, once)" >&2
	go build -trimpath -o "$bin.tmp" github.com/dexidp/dex/cmd/dex
	mv "$bin.tmp" "$bin"
fi
echo "$bin"
