package controller

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cairnlog/cairn/batch"
)

// An entry of the meta log is one Kafka RecordBatch holding one record
// whose value is the marshalled metav1.Command (design §5.2), so the meta
// log can live in a storage.Log like a partition's. The leader stamps the
// batch's base offset (the next offset of the meta log) and its term as
// PartitionLeaderEpoch when it proposes.

// errBadEntry: a committed entry is not a one-record batch of a command;
// the log is damaged, and the replica stops rather than skip it.
var errBadEntry = errors.New("controller: malformed meta log entry")

// encodeEntry wraps a marshalled command as the meta log stores it.
func encodeEntry(command []byte, baseOffset int64, term uint64, nowMs int64) ([]byte, error) {
	if term > math.MaxInt32 {
		return nil, fmt.Errorf("controller: term %d does not fit a leader epoch", term)
	}
	tmpl := batch.Header{BaseOffset: baseOffset, PartitionLeaderEpoch: int32(term), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	rec := []batch.Record{{Offset: baseOffset, TimestampMs: nowMs, Value: command}}
	whole, err := batch.Encode(tmpl, 0, rec, batch.None)
	if err != nil {
		return nil, fmt.Errorf("controller: encode meta entry: %w", err)
	}
	return whole, nil
}

// decodeEntry returns the command bytes of an entry and its header.
func decodeEntry(data []byte) (batch.Header, []byte, error) {
	h, recs, err := batch.Validate(data, batch.DefaultLimits())
	if err != nil {
		return batch.Header{}, nil, fmt.Errorf("%w: %w", errBadEntry, err)
	}
	if len(recs) != 1 || recs[0].Value == nil {
		return batch.Header{}, nil, fmt.Errorf("%w: %d records", errBadEntry, len(recs))
	}
	return h, recs[0].Value, nil
}

// A meta snapshot (the meta-snapshot file, and the Data of the meta
// group's Raft snapshots) is the state with the meta log's next offset,
// which the state does not hold and a new leader needs to stamp its first
// entry:
//
//	offset  size  field
//	 0      4     magic "CRMS"
//	 4      2     version, 1
//	 6      8     next offset of the meta log after the snapshot's index
//	14      …     metav1.State, marshalled deterministically
var snapshotMagic = [4]byte{'C', 'R', 'M', 'S'}

const (
	snapshotVersion     = 1
	snapshotHeaderBytes = 14
)

// errBadSnapshot: snapshot bytes that do not decode.
var errBadSnapshot = errors.New("controller: malformed meta snapshot")

func encodeSnapshot(nextOffset int64, state []byte) []byte {
	b := make([]byte, 0, snapshotHeaderBytes+len(state))
	b = append(b, snapshotMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, snapshotVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(nextOffset))
	return append(b, state...)
}

func decodeSnapshot(b []byte) (nextOffset int64, state []byte, err error) {
	if len(b) < snapshotHeaderBytes || [4]byte(b[:4]) != snapshotMagic {
		return 0, nil, fmt.Errorf("%w: no header", errBadSnapshot)
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != snapshotVersion {
		return 0, nil, fmt.Errorf("%w: version %d", errBadSnapshot, v)
	}
	nextOffset = int64(binary.BigEndian.Uint64(b[6:]))
	if nextOffset < 0 {
		return 0, nil, fmt.Errorf("%w: next offset %d", errBadSnapshot, nextOffset)
	}
	return nextOffset, b[snapshotHeaderBytes:], nil
}
