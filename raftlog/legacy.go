package raftlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"

	"github.com/cairnlog/cairn/storage/vfs"
)

// legacyEpochsFileName is the leader-epoch history the single-node
// partition keeps beside its segments (package partition writes it; its
// format is copied here, since partition builds on this package).
const legacyEpochsFileName = "leader-epochs.json"

// legacyEpochsFileVersion is the only version of that file there is.
const legacyEpochsFileVersion = 1

// legacyEpochsMax bounds the epochs a legacy directory may bring: they
// live in the Snapshot record (one per open of the single-node partition
// that wrote data; far below this).
const legacyEpochsMax = 1 << 14

// legacyEpochsFile is leader-epochs.json as package partition writes it.
type legacyEpochsFile struct {
	Version int `json:"version"`
	Entries []struct {
		Epoch       int32 `json:"epoch"`
		StartOffset int64 `json:"start_offset"`
	} `json:"entries"`
}

// loadLegacyEpochs reads the leader epochs of a legacy directory, none
// when it has no leader-epochs.json, clipped to the log end as the
// single-node partition clips them when it opens (an epoch whose data was
// never synced starts past the end).
func loadLegacyEpochs(fsys vfs.FS, dir string, logEnd int64) ([]LegacyEpoch, error) {
	name := filepath.Join(dir, legacyEpochsFileName)
	data, err := vfs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	epochs, err := decodeLegacyEpochs(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return clipLegacyEpochs(epochs, logEnd), nil
}

// decodeLegacyEpochs parses leader-epochs.json and checks its entries
// ascend in epoch and start offset.
func decodeLegacyEpochs(data []byte) ([]LegacyEpoch, error) {
	var f legacyEpochsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Version != legacyEpochsFileVersion {
		return nil, fmt.Errorf("version %d, want %d", f.Version, legacyEpochsFileVersion)
	}
	if len(f.Entries) > legacyEpochsMax {
		return nil, fmt.Errorf("%d epochs, max %d", len(f.Entries), legacyEpochsMax)
	}
	var epochs []LegacyEpoch
	for i, e := range f.Entries {
		if e.Epoch < 0 || e.StartOffset < 0 || (i > 0 && (e.Epoch <= epochs[i-1].Epoch || e.StartOffset < epochs[i-1].StartOffset)) {
			return nil, fmt.Errorf("entry %d (epoch %d at %d) out of order", i, e.Epoch, e.StartOffset)
		}
		epochs = append(epochs, LegacyEpoch{Epoch: e.Epoch, StartOffset: e.StartOffset})
	}
	return epochs, nil
}

// clipLegacyEpochs drops the epochs starting past logEnd, keeping the
// first one at logEnd when all of them do.
func clipLegacyEpochs(epochs []LegacyEpoch, logEnd int64) []LegacyEpoch {
	for len(epochs) > 1 && epochs[len(epochs)-1].StartOffset > logEnd {
		epochs = epochs[:len(epochs)-1]
	}
	if len(epochs) == 1 && epochs[0].StartOffset > logEnd {
		epochs[0].StartOffset = logEnd
	}
	return epochs
}

// legacySnapshot is the Snapshot record a directory holding segments
// (and perhaps leader epochs) but no raft log starts from (design §1.8):
// at the bootstrap index, everything stored so far below it, its term
// at least the newest legacy epoch so that the first election makes a
// Kafka epoch above every legacy one.
func legacySnapshot(boot Bootstrap, conf []byte, logStart, logEnd int64, legacy []LegacyEpoch) (*Snapshot, error) {
	term := boot.Term
	if n := len(legacy); n > 0 {
		term = max(term, uint64(legacy[n-1].Epoch))
	}
	if term > math.MaxInt32 {
		return nil, fmt.Errorf("legacy term %d", term)
	}
	return &Snapshot{Index: boot.Index, Term: term, NextOffset: logEnd, LogStartOffset: logStart, ConfState: conf, Legacy: legacy}, nil
}
