package groups

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record key and value versions, part of the __consumer_offsets format
// (see the package doc). Keys 0 and 1 are offset commits, 2 group metadata.
const (
	offsetKeyVersion   = 1
	groupKeyVersion    = 2
	offsetValueVersion = 3
	groupValueVersion  = 3
)

var errUnknownRecord = errors.New("unknown __consumer_offsets record version")

func offsetKey(group string, tp TopicPartition) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: tp.Topic, Partition: tp.Partition}
	return k.AppendTo(nil)
}

func offsetValue(oc OffsetCommit) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = oc.Offset, oc.LeaderEpoch, oc.Metadata, oc.CommitTimestampMs
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return k.AppendTo(nil)
}

func groupValue(c Change) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType, v.Generation, v.CurrentStateTimestamp = c.ProtocolType, c.Generation, c.AtMs
	if c.Assignor != "" {
		v.Protocol = &c.Assignor
	}
	return v.AppendTo(nil)
}

// restoreRecord applies one __consumer_offsets record to m.
func restoreRecord(m *Machine, key, value []byte) error {
	if len(key) < 2 {
		return fmt.Errorf("%w: key of %d bytes", errUnknownRecord, len(key))
	}
	version := int16(key[0])<<8 | int16(key[1])
	switch version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("offset commit key: %w", err)
		}
		tp := TopicPartition{Topic: k.Topic, Partition: k.Partition}
		if value == nil {
			m.RestoreOffset(k.Group, tp, nil)
			return nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(value); err != nil {
			return fmt.Errorf("offset commit value for %s %s-%d: %w", k.Group, k.Topic, k.Partition, err)
		}
		epoch := v.LeaderEpoch
		if v.Version < 3 {
			epoch = -1
		}
		m.RestoreOffset(k.Group, tp, &OffsetCommit{Offset: v.Offset, LeaderEpoch: epoch, Metadata: v.Metadata, CommitTimestampMs: v.CommitTimestamp})
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("group metadata key: %w", err)
		}
		if value == nil {
			m.RestoreGroup(k.Group, RestoredGroup{Deleted: true})
			return nil
		}
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(value); err != nil {
			return fmt.Errorf("group metadata value for %s: %w", k.Group, err)
		}
		rg := RestoredGroup{ProtocolType: v.ProtocolType, Generation: v.Generation, EmptySinceMs: v.CurrentStateTimestamp}
		if v.Protocol != nil {
			rg.Assignor = *v.Protocol
		}
		m.RestoreGroup(k.Group, rg)
	default:
		return fmt.Errorf("%w: key version %d", errUnknownRecord, version)
	}
	return nil
}

// partitionFor is Kafka's choice of offsets partition for a group:
// abs(String.hashCode) modulo the partition count.
func partitionFor(group string, partitions int32) int32 {
	var h int32
	for _, r := range utf16Units(group) {
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

func utf16Units(s string) []uint16 {
	out := make([]uint16, 0, len(s))
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			out = append(out, uint16(0xD800+(r>>10)), uint16(0xDC00+(r&0x3FF)))
			continue
		}
		out = append(out, uint16(r))
	}
	return out
}
