package raftlog

import (
	"fmt"
	"io"

	"github.com/cairnlog/cairn/storage/vfs"
)

// writeMeta creates (or rewrites) the raft-meta file name holding h and
// records, atomically: after a crash it holds the old content or all of
// the new, so all of it lies before the recovery point (h.WrittenBytes is
// set here to the size written).
func writeMeta(fsys vfs.FS, name string, h MetaHeader, records []Record) (MetaHeader, error) {
	var body []byte
	for _, r := range records {
		var err error
		if body, err = appendRecord(body, r); err != nil {
			return MetaHeader{}, fmt.Errorf("write %s: %w", name, err)
		}
	}
	h.WrittenBytes = int64(metaHeaderBytes + len(body))
	b := append(encodeMetaHeader(h), body...)
	if err := vfs.WriteFileAtomic(fsys, name, b); err != nil {
		return MetaHeader{}, fmt.Errorf("write raft-meta: %w", err)
	}
	return h, nil
}

// writeRecord appends r to the open raft-meta file f in a single Write, so
// a crash tears at most this record, and returns the bytes written. A
// failed write may leave a prefix of the record: the caller must cut the
// file back (or fail the log) before writing another.
func writeRecord(f vfs.File, r Record) (int, error) {
	b, err := appendRecord(nil, r)
	if err != nil {
		return 0, err
	}
	n, err := f.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return n, fmt.Errorf("append %s record: %w", r.Type(), err)
	}
	return n, nil
}
