package batch

import (
	"encoding/binary"
	"fmt"
)

// ControlType is what a control record marks. Part of the format: the
// second int16 of a control record's key.
type ControlType int16

// Control types a transaction's end writes (Kafka's ControlRecordType).
const (
	ControlAbort  ControlType = 0
	ControlCommit ControlType = 1
)

// TransactionalAttribute is the attribute bit of a transactional batch,
// for coordinators that write batches on a producer's behalf.
const TransactionalAttribute = transactionalBit

// controlKeyBytes and controlValueBytes are the sizes of version 0 of a
// control record's key (version int16, type int16) and of an end
// transaction marker's value (version int16, coordinator epoch int32).
const (
	controlKeyBytes   = 4
	controlValueBytes = 6
)

// EncodeMarker builds the control batch that ends a transaction of
// producerID at producerEpoch: transactional and control attribute bits, base
// sequence -1, one record at offset delta 0 whose key is version 0 and typ
// and whose value is version 0 and coordinatorEpoch, as Kafka writes it. The
// base offset is 0 and the leader epoch -1: the log stamps both.
func EncodeMarker(producerID int64, producerEpoch int16, typ ControlType, coordinatorEpoch int32, timestampMs int64) []byte {
	key := make([]byte, controlKeyBytes)
	binary.BigEndian.PutUint16(key[2:], uint16(typ))
	value := make([]byte, controlValueBytes)
	binary.BigEndian.PutUint32(value[2:], uint32(coordinatorEpoch))
	tmpl := Header{
		PartitionLeaderEpoch: -1,
		Attributes:           transactionalBit | controlBit,
		ProducerID:           producerID,
		ProducerEpoch:        producerEpoch,
		BaseSequence:         -1,
	}
	whole, err := Encode(tmpl, 0, []Record{{TimestampMs: timestampMs, Key: key, Value: value}}, None)
	if err != nil {
		// One small uncompressed record cannot fail to encode.
		panic(fmt.Sprintf("batch.EncodeMarker: %v", err))
	}
	return whole
}

// MarkerCoordinatorEpoch returns the coordinator epoch of a transaction
// marker's first record: its value is version 0 and the epoch. A shorter
// value, or another version, is ErrInvalidRecord.
func MarkerCoordinatorEpoch(recs []Record) (int32, error) {
	if len(recs) == 0 {
		return 0, fmt.Errorf("%w: control batch without a record", ErrInvalidRecord)
	}
	value := recs[0].Value
	if len(value) < controlValueBytes || binary.BigEndian.Uint16(value) != 0 {
		return 0, fmt.Errorf("%w: transaction marker value %x", ErrInvalidRecord, value)
	}
	return int32(binary.BigEndian.Uint32(value[2:])), nil
}

// MarkerType returns the control type of a control batch's first record
// (the only one Kafka writes). A record whose key is not a version 0
// control key is ErrInvalidRecord.
func MarkerType(recs []Record) (ControlType, error) {
	if len(recs) == 0 {
		return 0, fmt.Errorf("%w: control batch without a record", ErrInvalidRecord)
	}
	key := recs[0].Key
	if len(key) < controlKeyBytes || binary.BigEndian.Uint16(key) != 0 {
		return 0, fmt.Errorf("%w: control record key %x", ErrInvalidRecord, key)
	}
	return ControlType(int16(binary.BigEndian.Uint16(key[2:]))), nil
}
