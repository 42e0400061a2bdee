// Package api holds Cairn's protobuf service definitions and the Go code
// generated from them (regenerate with api/generate.sh).
package api
