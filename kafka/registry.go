package kafka

import (
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// reply is a handler's answer. Exactly one of resp, wait or none is set.
type reply struct {
	resp kmsg.Response
	// wait computes the response off the read loop; the writer calls it in
	// request order.
	wait func() kmsg.Response
	// none means the request gets no response (Produce with acks=0).
	none bool
	// closeAfter closes the connection once this reply is handled (Kafka
	// closes it after a failed acks=0 produce, the only way such a client hears of it).
	closeAfter bool
	// release, when set, is called once the response has been encoded (or
	// dropped): the buffers it refers to may then be reused. With files,
	// only once it has been written.
	release func()
	// files, when it holds sections, are the records of a fetch response
	// to send from their files (zerocopy.go).
	files *fileParts
}

type handler func(s *Server, c *conn, req kmsg.Request) reply

type api struct {
	key        int16
	minVersion int16
	maxVersion int16
	handle     handler
}

var apis = map[int16]api{}

// register declares that this server answers key at versions [min, max].
// It is called from init functions, one per API file.
func register(key, minVersion, maxVersion int16, h handler) {
	if _, dup := apis[key]; dup {
		panic(fmt.Sprintf("kafka: API key %d registered twice", key))
	}
	if probe := kmsg.RequestForKey(key); probe == nil || maxVersion > probe.MaxVersion() || minVersion > maxVersion {
		panic(fmt.Sprintf("kafka: API key %d versions %d-%d not codable", key, minVersion, maxVersion))
	}
	apis[key] = api{key: key, minVersion: minVersion, maxVersion: maxVersion, handle: h}
}

// SupportedAPI is one API key and its version range, as ApiVersions reports it.
type SupportedAPI struct {
	Key        int16
	Name       string
	MinVersion int16
	MaxVersion int16
}

// SupportedAPIs lists every registered API, ordered by key.
func SupportedAPIs() []SupportedAPI {
	out := make([]SupportedAPI, 0, len(apis))
	for _, a := range apis {
		out = append(out, SupportedAPI{Key: a.key, Name: kmsg.NameForKey(a.key), MinVersion: a.minVersion, MaxVersion: a.maxVersion})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
