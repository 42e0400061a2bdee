package raftlog

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

func sampleDescriptor() Descriptor {
	return Descriptor{LogStartOffset: 40, NextOffset: 900,
		Terms:        []TermStart{{Term: 3, Index: 1, Offset: 40}, {Term: 5, Index: 17, Offset: 300}},
		LegacyEpochs: []LegacyEpoch{{Epoch: 0, StartOffset: 0}, {Epoch: 4, StartOffset: 12}},
		StateData:    []byte("producer state")}
}

func TestDescriptorRoundTrip(t *testing.T) {
	for _, d := range []Descriptor{{}, {NextOffset: 7}, sampleDescriptor()} {
		b := EncodeDescriptor(d)
		got, err := DecodeDescriptor(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", d, err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Fatalf("decoded %+v, want %+v", got, d)
		}
		b[len(b)-5] ^= 0xff // the decoded copy shares nothing with b
		if !reflect.DeepEqual(got, d) {
			t.Fatal("the decoded descriptor changed with the bytes")
		}
	}
}

// reencode returns d's encoding with f applied to its body and the CRC
// fixed, so a check other than the CRC's must refuse it.
func reencode(d Descriptor, f func(b []byte)) []byte {
	b := EncodeDescriptor(d)
	body := b[:len(b)-4]
	f(body)
	return be.AppendUint32(body, crcOf(body))
}

func TestDescriptorErrors(t *testing.T) {
	good := EncodeDescriptor(sampleDescriptor())
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrInvalid},
		{"short", good[:20], ErrInvalid},
		{"truncated", good[:len(good)-1], ErrInvalid},
		{"bad magic", reencode(sampleDescriptor(), func(b []byte) { b[0] ^= 1 }), ErrInvalid},
		{"bad crc", append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), ErrInvalid},
		{"newer version", reencode(sampleDescriptor(), func(b []byte) { b[5] = 2 }), ErrVersion},
		{"flags", reencode(sampleDescriptor(), func(b []byte) { b[7] = 1 }), ErrInvalid},
		{"negative log start", reencode(sampleDescriptor(), func(b []byte) { b[8] = 0x80 }), ErrInvalid},
		{"term count past the end", reencode(sampleDescriptor(), func(b []byte) { b[24] = 0x10 }), ErrInvalid},
		{"trailing byte", reencode(sampleDescriptor(), func(b []byte) { be.PutUint32(b[len(b)-len("producer state")-4:], uint32(len("producer state")-1)) }), ErrInvalid},
		{"log start past next", EncodeDescriptor(Descriptor{LogStartOffset: 10, NextOffset: 9}), ErrInvalid},
		{"terms not ascending", EncodeDescriptor(Descriptor{NextOffset: 9, Terms: []TermStart{{Term: 3, Index: 5}, {Term: 3, Index: 6}}}), ErrInvalid},
		{"term zero", EncodeDescriptor(Descriptor{NextOffset: 9, Terms: []TermStart{{Term: 0, Index: 5}}}), ErrInvalid},
		{"term offset past next", EncodeDescriptor(Descriptor{NextOffset: 9, Terms: []TermStart{{Term: 2, Index: 5, Offset: 10}}}), ErrInvalid},
		{"legacy epochs not ascending", EncodeDescriptor(Descriptor{NextOffset: 9, LegacyEpochs: []LegacyEpoch{{Epoch: 2}, {Epoch: 1, StartOffset: 3}}}), ErrInvalid},
		{"negative legacy epoch", EncodeDescriptor(Descriptor{NextOffset: 9, LegacyEpochs: []LegacyEpoch{{Epoch: -1}}}), ErrInvalid},
		{"legacy epoch past next", EncodeDescriptor(Descriptor{NextOffset: 9, LegacyEpochs: []LegacyEpoch{{Epoch: 1, StartOffset: 10}}}), ErrInvalid},
	}
	for _, c := range cases {
		if _, err := DecodeDescriptor(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		if _, err := DecodeDescriptor(b); err == nil {
			t.Errorf("byte %d flipped: decoded", i)
		}
	}
}

// FuzzDescriptor: whatever the bytes, DecodeDescriptor does not panic,
// and what it accepts is consistent (re-checked) and encodes back to the
// same bytes: the encoding is canonical.
func FuzzDescriptor(f *testing.F) {
	f.Add(EncodeDescriptor(sampleDescriptor()))
	f.Add(EncodeDescriptor(Descriptor{}))
	f.Add([]byte("CRND"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDescriptor(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v wraps neither ErrInvalid nor ErrVersion", err)
			}
			return
		}
		if err := checkDescriptor(d); err != nil {
			t.Fatalf("accepted an inconsistent descriptor: %v", err)
		}
		if again := EncodeDescriptor(d); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, read %x", again, b)
		}
	})
}

// TestSnapshotDescriptor: Snapshot's Data describes the compaction point
// (the offset after it, the term boundaries at or below it, the log
// start) with the state data of the hook, asked for the snapshot index; a
// failing hook fails Snapshot.
func TestSnapshotDescriptor(t *testing.T) {
	l := createLog(t, vfs.NewMem())
	defer l.Close()
	m := newModel(t)
	ents, begins, end := m.build(t, 11, mixedSpecs)
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	if err := l.RecordApplied(15, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(15, nil); err != nil {
		t.Fatal(err)
	}
	var asked uint64
	l.SetSnapshotData(func(index uint64) ([]byte, error) { asked = index; return []byte("state"), nil })
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeDescriptor(snap.GetData())
	if err != nil {
		t.Fatal(err)
	}
	var terms []TermStart
	for i := uint64(11); i <= 15; i++ {
		if m.termAt(i) != m.termAt(i-1) {
			terms = append(terms, TermStart{Term: m.termAt(i), Index: i, Offset: m.beginOf(i)})
		}
	}
	want := Descriptor{LogStartOffset: 0, NextOffset: m.beginOf(16), Terms: terms, StateData: []byte("state")}
	if !reflect.DeepEqual(d, want) || asked != 15 {
		t.Fatalf("descriptor %+v (state asked at %d), want %+v at 15", d, asked, want)
	}
	l.SetSnapshotData(func(uint64) ([]byte, error) { return nil, errors.New("no state") })
	if _, err := l.Snapshot(); err == nil {
		t.Fatal("Snapshot with a failing hook succeeded")
	}
}
