package storage

import (
	"fmt"
	"strconv"
	"strings"
)

// File names in a partition directory. Part of the format.
const (
	logSuffix         = ".log"
	offsetIndexSuffix = ".index"
	timeIndexSuffix   = ".timeindex"
	// cleanedSuffix marks a compacted copy of a segment before it is renamed
	// over the original.
	cleanedSuffix = ".cleaned"
	// tempSuffix marks a file written by an atomic replace (vfs.TempName).
	tempSuffix    = ".tmp"
	stateFileName = "log-state"
	// baseOffsetDigits is the width of the zero-padded base offset in segment
	// file names, enough for any non-negative int64, so names sort by offset.
	baseOffsetDigits = 20
)

func segmentFileName(base int64, suffix string) string {
	return fmt.Sprintf("%0*d%s", baseOffsetDigits, base, suffix)
}

// parseSegmentFileName splits "<20 digits><suffix>" into base offset and
// suffix; ok is false for anything else.
func parseSegmentFileName(name string) (base int64, suffix string, ok bool) {
	if len(name) <= baseOffsetDigits {
		return 0, "", false
	}
	digits, suffix := name[:baseOffsetDigits], name[baseOffsetDigits:]
	if strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, "", false
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, "", false
	}
	switch suffix {
	case logSuffix, offsetIndexSuffix, timeIndexSuffix:
		return base, suffix, true
	}
	return 0, "", false
}

// isLeftover reports files that only an interrupted operation leaves behind.
func isLeftover(name string) bool {
	return strings.HasSuffix(name, tempSuffix) || strings.HasSuffix(name, cleanedSuffix)
}
