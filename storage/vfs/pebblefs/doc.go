// Package pebblefs lets pebble keep its files on a Cairn vfs.FS.
//
// The stream index is a pebble database inside each partition directory. On
// the operating system's filesystem pebble uses its own file layer (file
// descriptors, fadvise, real locks). On every other vfs.FS (in memory, the
// crash-simulating and the error-injecting filesystems) New adapts that FS to
// pebble's interface, so a simulated power cut drops the index's unsynced
// files exactly as it drops the log's, and injected faults reach the index
// too.
//
// What the adapter does not offer, because pebble does not need it with the
// options the stream index uses (no WAL, no ingestion, no checkpoints):
// hard links, files opened for random writes, WAL file reuse (it creates a
// new file instead, which the interface allows) and disk usage (pebble treats
// ErrUnsupported as "unknown").
package pebblefs
