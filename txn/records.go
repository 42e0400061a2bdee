package txn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// StateTopic is the internal topic holding transaction metadata.
const StateTopic = "__transaction_state"

// Record versions, part of the __transaction_state format (see doc.go):
// key version 0 (the transactional id), value version 0 (Kafka's
// TransactionLogValue v0, not flexible), as Kafka writes them, so Kafka's
// tools read them.
const (
	keyVersion   = 0
	valueVersion = 0
)

var errUnknownRecord = errors.New("unknown __transaction_state record")

func stateKey(id string) []byte {
	k := kmsg.TxnMetadataKey{Version: keyVersion, TransactionalID: id}
	return k.AppendTo(nil)
}

func stateValue(m Metadata) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = valueVersion
	v.ProducerID, v.ProducerEpoch, v.TimeoutMillis = m.ProducerID, m.ProducerEpoch, m.TimeoutMs
	v.State = kmsg.TransactionState(m.State)
	v.LastUpdateTimestamp, v.StartTimestamp = m.LastUpdateMs, m.StartMs
	byTopic := map[string][]int32{}
	var topics []string
	for _, tp := range m.Partitions {
		if _, ok := byTopic[tp.Topic]; !ok {
			topics = append(topics, tp.Topic)
		}
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}
	sort.Strings(topics)
	for _, t := range topics {
		vt := kmsg.NewTxnMetadataValueTopic()
		vt.Topic, vt.Partitions = t, byTopic[t]
		v.Topics = append(v.Topics, vt)
	}
	return v.AppendTo(nil)
}

// decodeRecord reads one __transaction_state record: the transactional id
// and its metadata, nil for a tombstone.
func decodeRecord(key, value []byte) (string, *Metadata, error) {
	if len(key) < 2 {
		return "", nil, fmt.Errorf("%w: key of %d bytes", errUnknownRecord, len(key))
	}
	if version := int16(binary.BigEndian.Uint16(key)); version != keyVersion {
		return "", nil, fmt.Errorf("%w: key version %d", errUnknownRecord, version)
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", nil, fmt.Errorf("transaction key: %w", err)
	}
	if value == nil {
		return k.TransactionalID, nil, nil
	}
	if len(value) < 2 {
		return "", nil, fmt.Errorf("%w: value of %d bytes for %q", errUnknownRecord, len(value), k.TransactionalID)
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return "", nil, fmt.Errorf("transaction value for %q: %w", k.TransactionalID, err)
	}
	if v.State < 0 || State(v.State) > PrepareEpochFence {
		return "", nil, fmt.Errorf("%w: state %d for %q", errUnknownRecord, v.State, k.TransactionalID)
	}
	m := &Metadata{ID: k.TransactionalID, ProducerID: v.ProducerID, ProducerEpoch: v.ProducerEpoch,
		TimeoutMs: v.TimeoutMillis, State: State(v.State), LastUpdateMs: v.LastUpdateTimestamp, StartMs: v.StartTimestamp}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			m.Partitions = append(m.Partitions, TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	sortPartitions(m.Partitions)
	return k.TransactionalID, m, nil
}

// PartitionFor is Kafka's choice of partition for a key (a transactional
// id here, a group in package groups): abs(Java String.hashCode) modulo
// the partition count.
func PartitionFor(key string, partitions int32) int32 {
	var h int32
	for _, r := range key {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -2147483648 {
		return 0
	}
	if h < 0 {
		h = -h
	}
	return h % partitions
}
