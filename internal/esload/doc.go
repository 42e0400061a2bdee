// Package esload generates event-store load for `cairn bench append` and
// `cairn bench read-stream`: concurrent single-event appends with exact
// expected revisions, and timed reads of one stream among many other events
// of its partition. It talks to the server only through the event-store API.
package esload
