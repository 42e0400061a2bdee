package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/env"
)

var allMechanisms = []string{sasl.Plain, sasl.ScramSHA256, sasl.ScramSHA512}

// logBuffer collects a server's log lines, for the audit lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines are the lines logged so far that contain every one of parts.
func (b *logBuffer) lines(parts ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, line := range strings.Split(b.buf.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// startSASLServer starts a server requiring SASL with every mechanism, its
// log kept, and edits applied.
func startSASLServer(t *testing.T, setup serverSetup, edit ...func(*Config)) (*testServer, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	setup.logger = slog.New(slog.NewTextHandler(logs, nil))
	edits := append([]func(*Config){func(c *Config) { c.SASL.Mechanisms = allMechanisms }}, edit...)
	return startServerWith(t, setup, edits...), logs
}

// addUser gives name SCRAM credentials for password under both SCRAM
// mechanisms, through the metadata group.
func addUser(t *testing.T, ts *testServer, name, password string) {
	t.Helper()
	for _, mechanism := range []string{sasl.ScramSHA256, sasl.ScramSHA512} {
		salt := []byte("salt-of-" + name)
		salted, err := sasl.SaltPassword(mechanism, password, salt, sasl.IterationsMin)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.cluster.UpsertScramCredential(name, mechanism, sasl.IterationsMin, salt, salted); err != nil {
			t.Fatal(err)
		}
	}
}

func clientMechanism(mechanism, user, password string) kgosasl.Mechanism {
	switch mechanism {
	case sasl.Plain:
		return plain.Auth{User: user, Pass: password}.AsMechanism()
	case sasl.ScramSHA256:
		return scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
	default:
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	}
}

// TestSaslFranzGoProducesAndConsumes: franz-go authenticates with each
// mechanism, produces and consumes; the audit log names the principal.
func TestSaslFranzGoProducesAndConsumes(t *testing.T) {
	ts, logs := startSASLServer(t, serverSetup{})
	addUser(t, ts, "alice", "wonderland")
	for _, mechanism := range allMechanisms {
		t.Run(mechanism, func(t *testing.T) {
			topic := "sasl-" + strings.ToLower(mechanism)
			cl := ts.client(t, kgo.SASL(clientMechanism(mechanism, "alice", "wonderland")),
				kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic), kgo.AllowAutoTopicCreation())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("hello " + mechanism)}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			fetches := cl.PollFetches(ctx)
			if err := fetches.Err(); err != nil {
				t.Fatalf("consume: %v", err)
			}
			if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "hello "+mechanism {
				t.Fatalf("consumed %v", recs)
			}
			if got := logs.lines("log=audit", "outcome=success", "mechanism="+mechanism, "principal=User:alice"); len(got) == 0 {
				t.Fatalf("no audit line of alice's %s success", mechanism)
			}
		})
	}
}

// TestSaslWrongPasswordRefused: a wrong password and an unknown user are
// refused alike with SASL_AUTHENTICATION_FAILED, each audited as a failure.
func TestSaslWrongPasswordRefused(t *testing.T) {
	ts, logs := startSASLServer(t, serverSetup{}, func(c *Config) { c.SASL.Limiter.Burst = 100 })
	addUser(t, ts, "alice", "wonderland")
	for _, mechanism := range allMechanisms {
		for _, user := range []string{"alice", "mallory"} {
			cl := ts.client(t, kgo.SASL(clientMechanism(mechanism, user, "guess")), kgo.RequestRetries(0))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := cl.Ping(ctx)
			cancel()
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("%s as %s with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", mechanism, user, err)
			}
			cl.Close()
			if got := logs.lines("log=audit", "outcome=failure", "mechanism="+mechanism, "principal=User:"+user); len(got) == 0 {
				t.Fatalf("no audit line of %s's %s failure", user, mechanism)
			}
		}
	}
}

// saslHandshake sends a SaslHandshake v1 for mechanism.
func saslHandshake(rc *rawConn, mechanism string) *kmsg.SASLHandshakeResponse {
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = 1, mechanism
	return rc.roundTrip(req).(*kmsg.SASLHandshakeResponse)
}

// plainLogin authenticates rc with PLAIN at SaslAuthenticate v2.
func plainLogin(rc *rawConn, user, password string) *kmsg.SASLAuthenticateResponse {
	if resp := saslHandshake(rc, sasl.Plain); resp.ErrorCode != 0 {
		rc.t.Fatalf("handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = 2, []byte("\x00"+user+"\x00"+password)
	return rc.roundTrip(req).(*kmsg.SASLAuthenticateResponse)
}

// TestSaslUnknownMechanismRefused: a mechanism the listener does not offer
// answers UNSUPPORTED_SASL_MECHANISM with the enabled list.
func TestSaslUnknownMechanismRefused(t *testing.T) {
	ts, _ := startSASLServer(t, serverSetup{}, func(c *Config) { c.SASL.Mechanisms = []string{sasl.ScramSHA512, sasl.Plain} })
	rc := ts.dial(t)
	resp := saslHandshake(rc, "GSSAPI")
	if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code {
		t.Fatalf("GSSAPI handshake: %v, want UNSUPPORTED_SASL_MECHANISM", kerr.ErrorForCode(resp.ErrorCode))
	}
	if got := strings.Join(resp.SupportedMechanisms, ","); got != "SCRAM-SHA-512,PLAIN" {
		t.Fatalf("enabled mechanisms %q", got)
	}
	// The client may pick another: the connection stays open.
	if resp := saslHandshake(rc, sasl.Plain); resp.ErrorCode != 0 {
		t.Fatalf("PLAIN after a refused mechanism: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// TestSaslRequestBeforeAuthenticationClosesConnection: ApiVersions and a
// handshake are answered before authentication; a Metadata request closes
// the connection, and the log says why.
func TestSaslRequestBeforeAuthenticationClosesConnection(t *testing.T) {
	ts, logs := startSASLServer(t, serverSetup{})
	rc := ts.dial(t)
	versions := kmsg.NewPtrApiVersionsRequest()
	versions.Version = 3
	versions.ClientSoftwareName, versions.ClientSoftwareVersion = "test", "1"
	if resp := rc.roundTrip(versions).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions before authentication: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	saslHandshake(rc, sasl.Plain)
	rc.send(metadataRequest(12))
	if !rc.closed() {
		t.Fatal("a Metadata request before authentication left the connection open")
	}
	if len(logs.lines("before authentication", "Metadata")) == 0 {
		t.Fatal("no log line for the closed connection")
	}
}

// TestSaslPreAuthRequestsBounded: a connection that keeps sending
// handshakes without ever authenticating is closed after 64 requests.
func TestSaslPreAuthRequestsBounded(t *testing.T) {
	ts, _ := startSASLServer(t, serverSetup{})
	rc := ts.dial(t)
	for range preAuthRequestsMax {
		saslHandshake(rc, sasl.Plain)
	}
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = 1, sasl.Plain
	rc.send(req)
	if !rc.closed() {
		t.Fatalf("the connection is open after %d requests without authenticating", preAuthRequestsMax+1)
	}
}

// TestSaslOversizedPreAuthFrameClosesConnection: a frame over 512 KiB
// before authentication closes the connection, though it is far below the
// request cap of an authenticated one.
func TestSaslOversizedPreAuthFrameClosesConnection(t *testing.T) {
	ts, _ := startSASLServer(t, serverSetup{})
	rc := ts.dial(t)
	rc.write(binary.BigEndian.AppendUint32(nil, 512<<10+1))
	if !rc.closed() {
		t.Fatal("a pre-authentication frame of 512 KiB + 1 left the connection open")
	}
	// A PLAIN token just under the cap is read and judged (and refused).
	rc = ts.dial(t)
	saslHandshake(rc, sasl.Plain)
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = 2, []byte("\x00alice\x00"+strings.Repeat("x", 500<<10))
	if resp := rc.roundTrip(req).(*kmsg.SASLAuthenticateResponse); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("a large PLAIN token: %v, want SASL_AUTHENTICATION_FAILED", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// TestSaslSessionExpiry (KIP-368): the reply carries the session lifetime;
// once it has passed, a request other than a re-authentication closes the
// connection, while a re-authentication as the same user renews it and one
// as another user is refused.
func TestSaslSessionExpiry(t *testing.T) {
	clock := env.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ts, _ := startSASLServer(t, serverSetup{clock: clock}, func(c *Config) { c.SASL.SessionLifetime = time.Minute })
	addUser(t, ts, "alice", "wonderland")
	addUser(t, ts, "bob", "builder")

	expired := ts.dial(t)
	if resp := plainLogin(expired, "alice", "wonderland"); resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 60_000 {
		t.Fatalf("login: %v, lifetime %d ms, want 60000", kerr.ErrorForCode(resp.ErrorCode), resp.SessionLifetimeMillis)
	}
	renewed := ts.dial(t)
	plainLogin(renewed, "alice", "wonderland")
	other := ts.dial(t)
	plainLogin(other, "alice", "wonderland")
	expired.roundTrip(metadataRequest(12))

	clock.Advance(time.Minute)
	if resp := plainLogin(renewed, "alice", "wonderland"); resp.ErrorCode != 0 {
		t.Fatalf("re-authentication: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	renewed.roundTrip(metadataRequest(12))
	if resp := plainLogin(other, "bob", "builder"); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("re-authentication as another user: %v, want SASL_AUTHENTICATION_FAILED", kerr.ErrorForCode(resp.ErrorCode))
	}
	if !other.closed() {
		t.Fatal("a re-authentication as another user left the connection open")
	}
	expired.send(metadataRequest(12))
	if !expired.closed() {
		t.Fatal("a request after the session expired left the connection open")
	}
}

// TestSaslFranzGoReauthenticates: given a session lifetime, franz-go
// re-authenticates on its open connection before the session ends, and
// keeps producing.
func TestSaslFranzGoReauthenticates(t *testing.T) {
	ts, logs := startSASLServer(t, serverSetup{}, func(c *Config) { c.SASL.SessionLifetime = 1500 * time.Millisecond })
	addUser(t, ts, "alice", "wonderland")
	cl := ts.client(t, kgo.SASL(clientMechanism(sasl.ScramSHA512, "alice", "wonderland")),
		kgo.DefaultProduceTopic("reauth"), kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	remote := regexp.MustCompile(`remote=(\S+)`)
	reauthenticated := func() bool {
		seen := map[string]int{}
		for _, line := range logs.lines("log=audit", "outcome=success") {
			if m := remote.FindStringSubmatch(line); m != nil {
				seen[m[1]]++
				if seen[m[1]] > 1 {
					return true
				}
			}
		}
		return false
	}
	for i := 0; i < 60 && !reauthenticated(); i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("tick")}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !reauthenticated() {
		t.Fatalf("no connection authenticated twice; audit lines:\n%s", strings.Join(logs.lines("log=audit"), "\n"))
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce after re-authenticating: %v", err)
	}
}

// TestSaslFailuresRateLimited: once an address has spent its failures, its
// next attempt is refused without its credentials being checked, even with
// the right password; the audit says so.
func TestSaslFailuresRateLimited(t *testing.T) {
	clock := env.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ts, logs := startSASLServer(t, serverSetup{clock: clock}, func(c *Config) {
		c.SASL.Limiter.Burst, c.SASL.Limiter.Refill = 2, time.Minute
	})
	addUser(t, ts, "alice", "wonderland")
	for i := 0; i < 2; i++ {
		if resp := plainLogin(ts.dial(t), "alice", "guess"); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
			t.Fatalf("wrong password %d: %v", i, kerr.ErrorForCode(resp.ErrorCode))
		}
	}
	resp := plainLogin(ts.dial(t), "alice", "wonderland")
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || !strings.Contains(*resp.ErrorMessage, "too many") {
		t.Fatalf("right password after the burst: %v %v, want refused as too many", kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage)
	}
	if len(logs.lines("log=audit", "outcome=refused")) != 1 {
		t.Fatal("no audit line of the refusal")
	}
	clock.Advance(time.Minute)
	if resp := plainLogin(ts.dial(t), "alice", "wonderland"); resp.ErrorCode != 0 {
		t.Fatalf("after a refill: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// TestSaslPrincipalSet: an authenticated connection's principal is the
// user; without SASL it stays anonymous.
func TestSaslPrincipalSet(t *testing.T) {
	ts, _ := startSASLServer(t, serverSetup{})
	addUser(t, ts, "alice", "wonderland")
	plainLogin(ts.dial(t), "alice", "wonderland")
	var principals []auth.Principal
	ts.mu.Lock()
	for c := range ts.conns {
		principals = append(principals, c.principal)
	}
	ts.mu.Unlock()
	if len(principals) != 1 || principals[0] != auth.User("alice") {
		t.Fatalf("principals %v, want User:alice", principals)
	}
}

// TestUserScramCredentialsWithKadm: kadm creates a user with a salted
// password, describes it, the user logs in, and a deletion removes it.
func TestUserScramCredentialsWithKadm(t *testing.T) {
	ts, _ := startSASLServer(t, serverSetup{})
	addUser(t, ts, "admin", "secret")
	adm := kadm.NewClient(ts.client(t, kgo.SASL(clientMechanism(sasl.ScramSHA256, "admin", "secret"))))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "s3cret"},
		{User: "weak", Mechanism: kadm.ScramSha256, Salt: []byte("12345678"), SaltedPassword: make([]byte, 32), Iterations: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := altered["carol"].Err; err != nil {
		t.Fatalf("upsert carol: %v", err)
	}
	if err := altered["weak"].Err; !errors.Is(err, kerr.UnacceptableCredential) {
		t.Fatalf("1000 iterations: %v, want UNACCEPTABLE_CREDENTIAL", err)
	}
	described, err := adm.DescribeUserSCRAMs(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if infos := described["carol"].CredInfos; len(infos) != 1 || infos[0].Mechanism != kadm.ScramSha512 || infos[0].Iterations != 8192 {
		t.Fatalf("carol described as %+v", described["carol"])
	}
	all, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("all users: %v %v, want admin and carol", all, err)
	}
	carol := ts.client(t, kgo.SASL(clientMechanism(sasl.ScramSHA512, "carol", "s3cret")))
	if err := carol.Ping(ctx); err != nil {
		t.Fatalf("carol logs in: %v", err)
	}
	altered, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}}, nil)
	if err != nil || altered["carol"].Err != nil {
		t.Fatalf("delete carol: %v %v", err, altered["carol"].Err)
	}
	described, err = adm.DescribeUserSCRAMs(ctx, "carol")
	if err != nil || !errors.Is(described["carol"].Err, kerr.ResourceNotFound) {
		t.Fatalf("deleted carol described: %v %v, want RESOURCE_NOT_FOUND", described["carol"], err)
	}
	altered, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}}, nil)
	if err != nil || !errors.Is(altered["carol"].Err, kerr.ResourceNotFound) {
		t.Fatalf("delete carol again: %v %v, want RESOURCE_NOT_FOUND", err, altered["carol"].Err)
	}
}

// TestSaslRawTokensAfterHandshakeV0: a client kept to SaslHandshake v0
// sends raw SASL tokens, which are answered in kind, for PLAIN and SCRAM;
// a wrong password closes the connection.
func TestSaslRawTokensAfterHandshakeV0(t *testing.T) {
	ts, logs := startSASLServer(t, serverSetup{})
	addUser(t, ts, "alice", "wonderland")
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(kmsg.SASLHandshake.Int16(), 0)
	for _, mechanism := range allMechanisms {
		cl := ts.client(t, kgo.MaxVersions(versions), kgo.SASL(clientMechanism(mechanism, "alice", "wonderland")),
			kgo.DefaultProduceTopic("raw"), kgo.AllowAutoTopicCreation())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(mechanism)}).FirstErr(); err != nil {
			t.Fatalf("%s with raw tokens: %v", mechanism, err)
		}
		cancel()
	}
	if got := logs.lines("log=audit", "outcome=success", "principal=User:alice"); len(got) < len(allMechanisms) {
		t.Fatalf("%d successes audited, want at least %d", len(got), len(allMechanisms))
	}
	rc := ts.dial(t)
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = 0, sasl.Plain
	if resp := rc.roundTrip(req).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != 0 {
		t.Fatalf("v0 handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	token := []byte("\x00alice\x00guess")
	rc.write(append(binary.BigEndian.AppendUint32(nil, uint32(len(token))), token...))
	if !rc.closed() {
		t.Fatal("a wrong raw PLAIN token left the connection open")
	}
}
