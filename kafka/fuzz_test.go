package kafka

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// seedFrames returns one well-formed frame (without size prefix) for every
// registered API at its lowest and highest version.
func seedFrames() [][]byte {
	var out [][]byte
	for _, a := range SupportedAPIs() {
		for _, v := range []int16{a.MinVersion, a.MaxVersion} {
			req := kmsg.RequestForKey(a.Key)
			req.SetVersion(v)
			if r, ok := req.(*kmsg.MetadataRequest); ok {
				t := kmsg.NewMetadataRequestTopic()
				name := "orders"
				t.Topic = &name
				r.Topics = append(r.Topics, t)
			}
			frame := binary.BigEndian.AppendUint16(nil, uint16(a.Key))
			frame = binary.BigEndian.AppendUint16(frame, uint16(v))
			frame = binary.BigEndian.AppendUint32(frame, 7)
			frame = binary.BigEndian.AppendUint16(frame, 3)
			frame = append(frame, "fzz"...)
			if req.IsFlexible() {
				frame = append(frame, 0)
			}
			out = append(out, req.AppendTo(frame))
		}
	}
	return out
}

// FuzzDecodeRequest proves that no frame, however malformed, panics the
// decoder: every input is either a registered request or an error.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, req, err := decodeRequest(frame)
		if err != nil {
			return
		}
		a, ok := apis[h.key]
		if !ok || h.version < a.minVersion || h.version > a.maxVersion {
			t.Fatalf("decoded an unregistered API %d v%d", h.key, h.version)
		}
		if req.Key() != h.key || req.GetVersion() != h.version {
			t.Fatalf("request is %d v%d, header says %d v%d", req.Key(), req.GetVersion(), h.key, h.version)
		}
	})
}

// FuzzReadFrame proves framing never panics, never returns a frame larger
// than the limit, and never returns more bytes than arrived.
func FuzzReadFrame(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s)
	}
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff}, []byte("tiny"))
	f.Fuzz(func(t *testing.T, prefix, body []byte) {
		in := append(append([]byte{}, prefix...), body...)
		const maxBytes = 1 << 16
		frame, err := readFrame(bytes.NewReader(in), maxBytes, nil)
		if err != nil {
			return
		}
		if len(frame) > maxBytes || len(frame)+4 > len(in) {
			t.Fatalf("frame of %d bytes from %d input bytes (limit %d)", len(frame), len(in), maxBytes)
		}
	})
}

// TestWriteSeedCorpus regenerates the committed seed corpus when
// CAIRN_WRITE_CORPUS=1; otherwise it checks the corpus exists.
func TestWriteSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRequest")
	if os.Getenv("CAIRN_WRITE_CORPUS") != "1" {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("seed corpus %s missing; run with CAIRN_WRITE_CORPUS=1", dir)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seedFrames() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%03d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzFetchSession proves that no fetch request, however its session
// fields and partitions are set, panics the session cache or grows it past
// its limit, and that an incremental answer names only partitions the
// session reads.
func FuzzFetchSession(f *testing.F) {
	for _, req := range []*kmsg.FetchRequest{
		sessionFetch(0, 0, map[string]map[int32]int64{"a": {0: 1, 1: 2}}, nil),
		sessionFetch(0, -1, map[string]map[int32]int64{"a": {0: 1}}, nil),
		sessionFetch(fuzzSessionID, 1, map[string]map[int32]int64{"b": {3: 4}}, map[string][]int32{"a": {0, 9}}),
		sessionFetch(fuzzSessionID, 2, nil, nil),
		sessionFetch(fuzzSessionID, 0, nil, nil),
	} {
		req.Version = 11
		frame := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
		frame = binary.BigEndian.AppendUint16(frame, uint16(req.Version))
		frame = binary.BigEndian.AppendUint32(frame, 1)
		frame = binary.BigEndian.AppendUint16(frame, 0)
		f.Add(req.AppendTo(frame))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 2 || int16(binary.BigEndian.Uint16(frame)) != kmsg.Fetch.Int16() {
			return
		}
		_, r, err := decodeRequest(frame)
		req, ok := r.(*kmsg.FetchRequest)
		if err != nil || !ok {
			return
		}
		const sessionsMax = 2
		c := newFetchSessions(sessionsMax, env.NewSeededRand(5))
		now := time.Unix(1000, 0)
		seed := c.begin(sessionFetch(0, 0, map[string]map[int32]int64{"a": {0: 0, 1: 0}}, nil), now)
		c.sessions[fuzzSessionID] = seed.session // a known id the seeds can name
		delete(c.sessions, seed.session.id)
		seed.session.id = fuzzSessionID
		for range 3 { // the same request again: epochs, replays
			fc := c.begin(req, now)
			if len(c.sessions) > sessionsMax {
				t.Fatalf("%d sessions, limit %d", len(c.sessions), sessionsMax)
			}
			if fc.errorCode != 0 {
				continue
			}
			resp := answer(fc, nil, nil, nil)
			c.finish(&fc, resp)
			reading := map[string]bool{}
			for _, name := range reads(fc) {
				reading[name[:strings.LastIndexByte(name, '@')]] = true
			}
			for _, name := range answered(resp) {
				if !reading[name] {
					t.Fatalf("answered %s, which the fetch did not read (%v)", name, reads(fc))
				}
			}
			now = now.Add(time.Minute)
		}
	})
}

const fuzzSessionID = 77
