package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/internal/testcerts"
)

// tlsFiles is a test's CA, the node's certificate it signed, and a client
// certificate (CN=kcat-client,OU=Tools,O=Cairn tests) of the same CA.
type tlsFiles struct {
	ca           *testcerts.CA
	node, client *testcerts.Leaf
}

func newTLSFiles(t *testing.T) tlsFiles {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "integration")
	return tlsFiles{
		ca:   ca,
		node: ca.Issue(t, dir, "node", testcerts.Options{Server: true}),
		client: ca.Issue(t, dir, "client", testcerts.Options{Subject: pkix.Name{
			CommonName: "kcat-client", OrganizationalUnit: []string{"Tools"}, Organization: []string{"Cairn tests"}}}),
	}
}

// serverArgs are serve's flags for an SSL listener at addr with f's
// certificate; the harness's --kafka-addr stays a PLAINTEXT listener.
func (f tlsFiles) serverArgs(addr string, extra ...string) []string {
	return append([]string{"--listener", "SSL=SSL://" + addr, "--tls-cert-file", f.node.CertFile, "--tls-key-file", f.node.KeyFile}, extra...)
}

// TestKcatOverSSL: librdkafka (kcat) produces and consumes over an SSL
// listener checking the node's certificate, then over one requiring a
// client certificate (mTLS), which a kcat without one cannot use.
func TestKcatOverSSL(t *testing.T) {
	kcatPath := requireTool(t, "kcat")
	f := newTLSFiles(t)
	sslAddr := freeAddr(t)
	server := startCairn(t, "", f.serverArgs(sslAddr)...)
	ssl := []string{"-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + f.ca.CertFile}
	kcat(t, kcatPath, sslAddr, "k1:over ssl\n", append([]string{"-t", "secured", "-P", "-K:"}, ssl...)...)
	got := kcat(t, kcatPath, sslAddr, "", append([]string{"-t", "secured", "-C", "-e", "-o", "beginning", "-f", `%k=%s\n`}, ssl...)...)
	if got != "k1=over ssl\n" {
		t.Fatalf("consumed over SSL %q", got)
	}
	// kcat's metadata through the SSL listener names the SSL address.
	if list := kcat(t, kcatPath, sslAddr, "", append([]string{"-L"}, ssl...)...); !strings.Contains(list, sslAddr) || strings.Contains(list, server.kafkaAddr) {
		t.Fatalf("metadata through the SSL listener:\n%s", list)
	}
	server.Kill()

	mtlsAddr := freeAddr(t)
	startCairn(t, "", f.serverArgs(mtlsAddr, "--tls-client-ca-file", f.ca.CertFile,
		"--tls-principal-mapping-rules", `RULE:^CN=(.*?),OU=.*$/$1/,DEFAULT`)...)
	mtls := append(ssl, "-X", "ssl.certificate.location="+f.client.CertFile, "-X", "ssl.key.location="+f.client.KeyFile)
	kcat(t, kcatPath, mtlsAddr, "k2:over mtls\n", append([]string{"-t", "mutual", "-P", "-K:"}, mtls...)...)
	got = kcat(t, kcatPath, mtlsAddr, "", append([]string{"-t", "mutual", "-C", "-e", "-o", "beginning", "-f", `%k=%s\n`}, mtls...)...)
	if got != "k2=over mtls\n" {
		t.Fatalf("consumed over mTLS %q", got)
	}
	// Without a client certificate kcat gets no metadata.
	ctx, cancel := context.WithTimeout(context.Background(), kcatWaitMax)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcatPath, append([]string{"-b", mtlsAddr, "-L", "-m", "3"}, ssl...)...).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("kcat without a client certificate: %v (context %v)\n%s", err, ctx.Err(), out)
	}
}

// TestHostileClientsOverSSL runs the hostile-client suite against an SSL
// listener: each case's bytes go through TLS connections.
func TestHostileClientsOverSSL(t *testing.T) {
	f := newTLSFiles(t)
	sslAddr := freeAddr(t)
	server := startCairn(t, "", f.serverArgs(sslAddr)...)
	cfg := &tls.Config{RootCAs: f.ca.Pool(), MinVersion: tls.VersionTLS12}
	hostileSuite(t, server, func(t *testing.T) net.Conn {
		t.Helper()
		d := &net.Dialer{Timeout: rawWaitMax}
		conn, err := tls.DialWithDialer(d, "tcp", sslAddr, cfg)
		if err != nil {
			t.Fatalf("dial %s over TLS: %v", sslAddr, err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	})
}
