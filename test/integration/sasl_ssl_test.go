package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// saslSSLServer starts a node whose SASL_SSL listener (returned) offers
// SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, with the user admin staged
// before the first start; extra flags follow. The harness's --kafka-addr
// stays a PLAINTEXT listener.
func saslSSLServer(t *testing.T, f tlsFiles, extra ...string) (*cairnServer, string) {
	t.Helper()
	dir := t.TempDir()
	cairnOffline(t, "user", "create", "admin", "--password", "admin-secret", "--mechanism", "SCRAM-SHA-512", "--data-dir", dir)
	addr := freeAddr(t)
	args := append([]string{"--listener", "SASL_SSL=SASL_SSL://" + addr, "--tls-cert-file", f.node.CertFile, "--tls-key-file", f.node.KeyFile,
		"--sasl-mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"}, extra...)
	return startCairn(t, dir, args...), addr
}

// cairnAt runs a cairn client command against brokers at addr and
// returns its exit code, stdout and stderr.
func cairnAt(t *testing.T, addr string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliWaitMax)
	defer cancel()
	cmd := exec.CommandContext(ctx, cairnBinary, append(args, "--brokers", addr)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatalf("cairn %s: %v (context %v)\nstderr:\n%s", strings.Join(args, " "), err, ctx.Err(), stderr.String())
	}
	return 0, stdout.String(), stderr.String()
}

// franzSASLSSL is a franz-go client of the SASL_SSL listener at addr.
func franzSASLSSL(t *testing.T, f tlsFiles, addr string, mechanism kgosasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.SASL(mechanism),
		kgo.DialTLSConfig(&tls.Config{RootCAs: f.ca.Pool(), MinVersion: tls.VersionTLS12}),
		kgo.RecordRetries(3), kgo.RetryTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestSaslSSLScramACLs: over a SASL_SSL listener with the authorizer on,
// the CLI as the super user admin creates alice (AlterUserScramCredentials)
// and a topic; franz-go authenticates with each mechanism; alice,
// authenticated by SCRAM, is refused produce without a Write ACL and
// allowed with it; kcat (librdkafka, SASL_SSL + SCRAM-SHA-512) produces
// as alice and consumes as admin.
func TestSaslSSLScramACLs(t *testing.T) {
	kcatPath := requireTool(t, "kcat")
	f := newTLSFiles(t)
	_, addr := saslSSLServer(t, f, "--authorizer", "--super-users", "User:admin")
	admin := []string{"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin", "--sasl-password", "admin-secret", "--tls-ca-file", f.ca.CertFile}
	mustCairn := func(args ...string) string {
		t.Helper()
		code, out, stderr := cairnAt(t, addr, append(args, admin...)...)
		if code != 0 {
			t.Fatalf("cairn %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	mustCairn("user", "create", "alice", "--password", "alice-secret", "--mechanism", "SCRAM-SHA-512")
	mustCairn("user", "passwd", "alice", "--password", "alice-secret", "--mechanism", "SCRAM-SHA-256")
	mustCairn("topic", "create", "orders")
	// Without credentials the SASL_SSL listener serves nothing.
	if code, _, _ := cairnAt(t, addr, "topic", "list", "--tls-ca-file", f.ca.CertFile, "--timeout", "5s"); code == 0 {
		t.Fatal("topic list without SASL credentials succeeded on the SASL_SSL listener")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, mechanism := range map[string]kgosasl.Mechanism{
		"PLAIN":         plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism(),
		"SCRAM-SHA-256": scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism(),
		"SCRAM-SHA-512": scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism(),
	} {
		resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, franzSASLSSL(t, f, addr, mechanism))
		if err != nil {
			t.Fatalf("franz-go over SASL_SSL with %s: %v", name, err)
		}
		if len(resp.Brokers) != 1 || net.JoinHostPort(resp.Brokers[0].Host, strconv.Itoa(int(resp.Brokers[0].Port))) != addr {
			t.Fatalf("franz-go over SASL_SSL with %s: brokers %+v, want the SASL_SSL address %s", name, resp.Brokers, addr)
		}
	}

	alice := franzSASLSSL(t, f, addr, scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism(), kgo.DisableIdempotentWrite())
	err := alice.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("refused")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice producing without a Write ACL: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	mustCairn("acl", "add", "--principal", "User:alice", "--operation", "Write", "--topic", "orders")
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: "orders", Key: []byte("k1"), Value: []byte("franz")}).FirstErr(); err != nil {
		t.Fatalf("alice producing with a Write ACL: %v", err)
	}

	tlsSCRAM := func(user, password string) []string {
		return []string{"-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + f.ca.CertFile,
			"-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=" + user, "-X", "sasl.password=" + password}
	}
	kcat(t, kcatPath, addr, "k2:kcat\n", append([]string{"-t", "orders", "-P", "-K:"}, tlsSCRAM("alice", "alice-secret")...)...)
	got := kcat(t, kcatPath, addr, "", append([]string{"-t", "orders", "-C", "-e", "-o", "beginning", "-f", `%k=%s\n`}, tlsSCRAM("admin", "admin-secret")...)...)
	if got != "k1=franz\nk2=kcat\n" {
		t.Fatalf("kcat as admin over SASL_SSL consumed %q", got)
	}
}

// TestHostileClientsOverSaslSSL runs the hostile-client suite against a
// SASL_SSL listener: each connection shakes hands over TLS and logs in
// with PLAIN as admin before the case's bytes.
func TestHostileClientsOverSaslSSL(t *testing.T) {
	f := newTLSFiles(t)
	server, addr := saslSSLServer(t, f)
	cfg := &tls.Config{RootCAs: f.ca.Pool(), MinVersion: tls.VersionTLS12}
	hostileSuite(t, server, func(t *testing.T) net.Conn {
		t.Helper()
		d := &net.Dialer{Timeout: rawWaitMax}
		conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err != nil {
			t.Fatalf("dial %s over TLS: %v", addr, err)
		}
		t.Cleanup(func() { conn.Close() })
		plainLoginRaw(t, conn, "admin", "admin-secret")
		return conn
	})
}

// plainLoginRaw authenticates conn with SaslHandshake v1 and
// SaslAuthenticate v1 (PLAIN), written by hand as the suite's frames are.
func plainLoginRaw(t *testing.T, conn net.Conn, user, password string) {
	t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "PLAIN"
	sendRaw(conn, requestFrame(hs.Key(), 1, 1, hs.AppendTo(nil)))
	_, body := readResponse(t, conn)
	hsResp := kmsg.NewPtrSASLHandshakeResponse()
	hsResp.SetVersion(1)
	if err := hsResp.ReadFrom(body); err != nil || hsResp.ErrorCode != 0 {
		t.Fatalf("SaslHandshake: %v, code %d", err, hsResp.ErrorCode)
	}
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version, au.SASLAuthBytes = 1, []byte("\x00"+user+"\x00"+password)
	sendRaw(conn, requestFrame(au.Key(), 1, 2, au.AppendTo(nil)))
	_, body = readResponse(t, conn)
	auResp := kmsg.NewPtrSASLAuthenticateResponse()
	auResp.SetVersion(1)
	if err := auResp.ReadFrom(body); err != nil || auResp.ErrorCode != 0 {
		t.Fatalf("SaslAuthenticate: %v, code %d", err, auResp.ErrorCode)
	}
}
