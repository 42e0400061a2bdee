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

// metaFileBytesMax bounds the raft-meta file a reader loads whole. A file
// is rewritten with only its live records once it passes 1 MiB and four
// times its live size, and the live records are a few per election or
// configuration change plus one anchor per 64 MiB of data (16 k, about
// 400 KiB, for 1 TB): a file near this bound is a bug, not a workload.
const metaFileBytesMax = 64 << 20

// readMeta loads and scans the raft-meta file name (see ScanMeta) and cuts
// a torn tail off it, syncing the cut, so that records appended next
// follow the last valid one: a valid record after torn bytes would never
// be read again. A missing file gives an error wrapping fs.ErrNotExist.
func readMeta(fsys vfs.FS, name string, generation uint32, synced int64) (MetaScan, error) {
	size, err := fsys.Stat(name)
	if err != nil {
		return MetaScan{}, fmt.Errorf("read raft-meta: %w", err)
	}
	if size > metaFileBytesMax {
		return MetaScan{}, fmt.Errorf("read %s: %d bytes, max %d", name, size, metaFileBytesMax)
	}
	b, err := vfs.ReadFile(fsys, name)
	if err != nil {
		return MetaScan{}, fmt.Errorf("read raft-meta: %w", err)
	}
	scan, err := ScanMeta(name, b, generation, synced)
	if err != nil || scan.Torn == nil {
		return scan, err
	}
	if err := cutMeta(fsys, name, scan.ValidBytes); err != nil {
		return MetaScan{}, fmt.Errorf("cut torn tail of %s at %d (%v): %w", name, scan.ValidBytes, scan.Torn, err)
	}
	return scan, nil
}

// cutMeta truncates the file name to size and syncs it.
func cutMeta(fsys vfs.FS, name string, size int64) error {
	f, err := fsys.OpenAppend(name)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}
