package partition

import (
	"encoding/json"
	"fmt"
)

// epochEntry says that leader epoch Epoch wrote its first record at StartOffset.
type epochEntry struct {
	Epoch       int32 `json:"epoch"`
	StartOffset int64 `json:"start_offset"`
}

// epochHistory is the leader-epoch cache clients query with
// OffsetForLeaderEpoch to detect truncation. It is pure; the partition persists it.
type epochHistory struct {
	entries []epochEntry // ascending in both epoch and start offset
}

// current is the newest epoch, -1 when there is none.
func (h *epochHistory) current() int32 {
	if len(h.entries) == 0 {
		return -1
	}
	return h.entries[len(h.entries)-1].Epoch
}

// begin starts a new epoch at logEnd. An epoch that wrote nothing is replaced,
// so restarts without writes do not grow the history.
func (h *epochHistory) begin(epoch int32, logEnd int64) {
	for len(h.entries) > 0 && h.entries[len(h.entries)-1].StartOffset >= logEnd {
		h.entries = h.entries[:len(h.entries)-1]
	}
	h.entries = append(h.entries, epochEntry{Epoch: epoch, StartOffset: logEnd})
}

// endOffsetFor answers OffsetForLeaderEpoch: the largest epoch <= requested and
// the offset where the epoch after it began (or the log end for the current
// epoch). (-1, -1) means the requested epoch is older than anything known.
func (h *epochHistory) endOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	if len(h.entries) == 0 || epoch < h.entries[0].Epoch {
		return -1, -1
	}
	for i := len(h.entries) - 1; i >= 0; i-- {
		if h.entries[i].Epoch <= epoch {
			if i == len(h.entries)-1 {
				return h.entries[i].Epoch, logEnd
			}
			return h.entries[i].Epoch, h.entries[i+1].StartOffset
		}
	}
	return -1, -1
}

// epochAt is the epoch in force at offset: the newest that started at or
// before it; -1 before every epoch.
func (h *epochHistory) epochAt(offset int64) int32 {
	epoch := int32(-1)
	for _, e := range h.entries {
		if e.StartOffset > offset {
			break
		}
		epoch = e.Epoch
	}
	return epoch
}

// truncateTo drops entries that start past logEnd, which recovery can leave
// behind when the data of a new epoch was never synced.
func (h *epochHistory) truncateTo(logEnd int64) {
	for len(h.entries) > 1 && h.entries[len(h.entries)-1].StartOffset > logEnd {
		h.entries = h.entries[:len(h.entries)-1]
	}
	if len(h.entries) == 1 && h.entries[0].StartOffset > logEnd {
		h.entries[0].StartOffset = logEnd
	}
}

// epochFileVersion is part of the on-disk format of the leader-epochs file.
const epochFileVersion = 1

type epochFile struct {
	Version int          `json:"version"`
	Entries []epochEntry `json:"entries"`
}

func (h *epochHistory) marshal() ([]byte, error) {
	return json.Marshal(epochFile{Version: epochFileVersion, Entries: h.entries})
}

func unmarshalEpochHistory(data []byte) (*epochHistory, error) {
	var f epochFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("decode leader epochs: %w", err)
	}
	if f.Version != epochFileVersion {
		return nil, fmt.Errorf("leader epochs version %d: unsupported", f.Version)
	}
	for i := 1; i < len(f.Entries); i++ {
		if f.Entries[i].Epoch <= f.Entries[i-1].Epoch || f.Entries[i].StartOffset < f.Entries[i-1].StartOffset {
			return nil, fmt.Errorf("leader epochs out of order at entry %d", i)
		}
	}
	return &epochHistory{entries: f.Entries}, nil
}
