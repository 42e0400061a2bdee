package transport

import (
	"encoding/binary"
	"net"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// entryDataSharedBytesMin is the least entry Data that Send does not copy:
// such Data is written from the entry itself (writev), not marshalled into
// a buffer and copied again into the frame. A replicated partition's
// entries are whole produce requests, often a MiB, so on a leader each
// follower otherwise cost two copies of everything written. Below it one
// marshal costs less than the extra pieces.
const entryDataSharedBytesMin = 4 << 10

// entryDataField is the field number of raftpb.Entry's Data.
const entryDataField = 4

// message is one marshalled raftpb.Message as pieces whose concatenation
// is its encoding. Pieces of at least entryDataSharedBytesMin are entry
// Data raft made, which no one changes after (raft's own log shares
// them the same way); the writer sends them in place.
type message [][]byte

func (m message) encodedBytes() int {
	n := 0
	for _, p := range m {
		n += len(p)
	}
	return n
}

// marshalMessage encodes m. A message with an entry of large Data is
// encoded as proto.Marshal would, with each entry its own field record
// after the other fields (a reader takes fields in any order), and the
// large Data left in place as a piece of its own.
func marshalMessage(m *raftpb.Message) (message, error) {
	if !hasLargeEntry(m) {
		b, err := proto.Marshal(m)
		return message{b}, err
	}
	// The fields other than the entries, set on a new message that shares
	// their values (nothing here changes them).
	head := &raftpb.Message{}
	hr := head.ProtoReflect()
	entriesField := hr.Descriptor().Fields().ByNumber(messageEntriesField)
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd != entriesField {
			hr.Set(fd, v)
		}
		return true
	})
	buf, err := proto.MarshalOptions{}.MarshalAppend(nil, head)
	if err != nil {
		return nil, err
	}
	var pieces message
	for _, e := range m.Entries {
		if len(e.Data) < entryDataSharedBytesMin {
			eb, err := proto.Marshal(e)
			if err != nil {
				return nil, err
			}
			buf = protowire.AppendTag(buf, messageEntriesField, protowire.BytesType)
			buf = protowire.AppendBytes(buf, eb)
			continue
		}
		eh, err := proto.Marshal(&raftpb.Entry{Term: e.Term, Index: e.Index, Type: e.Type})
		if err != nil {
			return nil, err
		}
		dataBytes := len(e.Data)
		entryBytes := len(eh) + protowire.SizeTag(entryDataField) + protowire.SizeBytes(dataBytes)
		buf = protowire.AppendTag(buf, messageEntriesField, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(entryBytes))
		buf = append(buf, eh...)
		buf = protowire.AppendTag(buf, entryDataField, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(dataBytes))
		pieces = append(pieces, buf, e.Data)
		buf = nil
	}
	if len(buf) > 0 {
		pieces = append(pieces, buf)
	}
	return pieces, nil
}

func hasLargeEntry(m *raftpb.Message) bool {
	for _, e := range m.Entries {
		if len(e.Data) >= entryDataSharedBytesMin {
			return true
		}
	}
	return false
}

// frameVector lays out the frame holding items as pieces for one writev:
// headers and small pieces copied into scratch (returned for reuse),
// large pieces referenced where they are. Its bytes are exactly those
// AppendFrame of the same frame would give.
func frameVector(scratch []byte, items []item) (net.Buffers, []byte, int) {
	if items[0].typ != FrameRaftBatch {
		scratch = AppendFrame(scratch[:0], items[0].typ, items[0].payload)
		return net.Buffers{scratch}, scratch, len(scratch)
	}
	size := raftBatchHeaderBytes
	for _, it := range items {
		size += it.bytes
	}
	// spans are pieces of scratch (ref nil: [from, to)) or referenced ones,
	// resolved after scratch stops growing.
	type span struct {
		from, to int
		ref      []byte
	}
	var spans []span
	from := 0
	scratch = appendFrameHeader(scratch[:0], FrameRaftBatch, size)
	scratch = binary.BigEndian.AppendUint32(scratch, uint32(len(items)))
	for _, it := range items {
		scratch = binary.BigEndian.AppendUint64(scratch, it.group)
		scratch = binary.BigEndian.AppendUint32(scratch, uint32(len(it.messages)))
		for _, m := range it.messages {
			scratch = binary.BigEndian.AppendUint32(scratch, uint32(m.encodedBytes()))
			for _, p := range m {
				if len(p) < entryDataSharedBytesMin {
					scratch = append(scratch, p...)
					continue
				}
				spans = append(spans, span{from: from, to: len(scratch)}, span{ref: p})
				from = len(scratch)
			}
		}
	}
	spans = append(spans, span{from: from, to: len(scratch)})
	bufs := make(net.Buffers, 0, len(spans))
	total := 0
	for _, s := range spans {
		p := s.ref
		if p == nil {
			p = scratch[s.from:s.to]
		}
		if len(p) > 0 {
			bufs = append(bufs, p)
			total += len(p)
		}
	}
	return bufs, scratch, total
}
