// Package api holds Cairn's protobuf definitions and the Go code generated
// from them (regenerate with api/generate.sh): the event-store service
// (cairn/eventstore/v1) and the metadata group's state and commands
// (cairn/meta/v1, an on-disk format).
package api
