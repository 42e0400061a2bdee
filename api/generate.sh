#!/usr/bin/env bash
# Regenerate the Go code for the protobuf APIs under api/ into OUT (default:
# the repository itself). The plugins are built at the versions go.mod pins,
# so the output depends only on protoc and go.mod; api/generate_test.go
# fails when the committed code differs from what this produces.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

cd "$repo"
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-connect-go" connectrpc.com/connect/cmd/protoc-gen-connect-go

mapfile -t protos < <(cd api && find . -name '*.proto' | sort)
(cd api && protoc \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" \
	--plugin=protoc-gen-connect-go="$bin/protoc-gen-connect-go" \
	--go_out="$out" --go_opt=module=github.com/cairnlog/cairn \
	--connect-go_out="$out" --connect-go_opt=module=github.com/cairnlog/cairn \
	"${protos[@]}")
