package sasl

import (
	"testing"

	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// BenchmarkExchange measures one whole server-side authentication per
// mechanism at 4096 iterations (the client's work included for SCRAM, as
// franz-go does it): the cost that bounds authentications per second.
func BenchmarkExchange(b *testing.B) {
	creds := users{{"alice", ScramSHA512}: credential(b, ScramSHA512, "pw"), {"alice", ScramSHA256}: credential(b, ScramSHA256, "pw")}
	s := newServer(b, creds)
	for _, tc := range []struct {
		name   string
		client kgosasl.Mechanism
	}{
		{ScramSHA256, scram.Auth{User: "alice", Pass: "pw"}.AsSha256Mechanism()},
		{ScramSHA512, scram.Auth{User: "alice", Pass: "pw"}.AsSha512Mechanism()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := converse(b, s, tc.client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run(Plain, func(b *testing.B) {
		for b.Loop() {
			conv, _ := s.Start(Plain)
			if _, done, err := conv.Step([]byte("\x00alice\x00pw")); !done || err != nil {
				b.Fatal(err)
			}
		}
	})
}
