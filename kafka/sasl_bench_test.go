package kafka

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cairnlog/cairn/auth/sasl"
)

// BenchmarkSaslLogin measures whole logins over loopback, each on a new
// connection (dial, SaslHandshake, SaslAuthenticate until done), client
// and server in this process: SCRAM-SHA-512 (the client salts the
// password, 4096 iterations; the server compares keys) and PLAIN (the
// server salts it). bench/run reports logins/s.
func BenchmarkSaslLogin(b *testing.B) {
	ts := startServerWith(b, serverSetup{}, func(c *Config) {
		c.SASL.Mechanisms = allMechanisms
		c.SASL.Limiter.Burst = 1 << 30 // every login succeeds; the limiter is not what is measured
	})
	salt := []byte("salt-of-bench")
	for _, mechanism := range []string{sasl.ScramSHA256, sasl.ScramSHA512} {
		salted, err := sasl.SaltPassword(mechanism, "bench-pw", salt, sasl.IterationsMin)
		if err != nil {
			b.Fatal(err)
		}
		if err := ts.cluster.UpsertScramCredential("bench", mechanism, sasl.IterationsMin, salt, salted); err != nil {
			b.Fatal(err)
		}
	}
	login := func(b *testing.B, mechanism string) {
		nc, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		rc := &rawConn{t: b, nc: nc, r: bufio.NewReader(nc)}
		if resp := saslHandshake(rc, mechanism); resp.ErrorCode != 0 {
			b.Fatalf("handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		authenticate := func(token []byte) []byte {
			req := kmsg.NewPtrSASLAuthenticateRequest()
			req.Version, req.SASLAuthBytes = 2, token
			resp := rc.roundTrip(req).(*kmsg.SASLAuthenticateResponse)
			if resp.ErrorCode != 0 {
				b.Fatalf("authenticate: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			return resp.SASLAuthBytes
		}
		if mechanism == sasl.Plain {
			authenticate([]byte("\x00bench\x00bench-pw"))
			return
		}
		session, first, err := scram.Auth{User: "bench", Pass: "bench-pw"}.AsSha512Mechanism().Authenticate(context.Background(), ts.addr)
		if err != nil {
			b.Fatal(err)
		}
		challenge := authenticate(first)
		for {
			done, response, err := session.Challenge(challenge)
			if err != nil {
				b.Fatal(err)
			}
			if done {
				return
			}
			challenge = authenticate(response)
		}
	}
	for _, mechanism := range []string{sasl.ScramSHA512, sasl.Plain} {
		b.Run(mechanism, func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				login(b, mechanism)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
		})
	}
}
