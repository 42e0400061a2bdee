package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestUserCreateStagesInTheDataDir: user create --data-dir stages a
// credential (the password from CAIRN_PASSWORD) that the node's next Open
// applies; a missing password, an unknown mechanism and a bad iteration
// count are refused before anything is written.
func TestUserCreateStagesInTheDataDir(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "create", "admin", "--data-dir", dir}, "--password is required"},
		{[]string{"user", "create", "admin", "--password", "p", "--mechanism", "SCRAM-SHA-1", "--data-dir", dir}, "--mechanism"},
		{[]string{"user", "create", "admin", "--password", "p", "--iterations", "100", "--data-dir", dir}, "iterations 100"},
	} {
		if res := cairn(t, tc.args...); res.err == nil || !strings.Contains(res.err.Error(), tc.want) {
			t.Errorf("cairn %s: %v, want an error saying %q", strings.Join(tc.args, " "), res.err, tc.want)
		}
	}
	res := invocation{env: map[string]string{"CAIRN_PASSWORD": "from-env"},
		args: []string{"user", "create", "admin", "--mechanism", "scram-sha-256", "--iterations", "8192", "--data-dir", dir}}.run(t)
	if res.err != nil || !strings.Contains(res.stdout, "staged user admin (SCRAM-SHA-256)") {
		t.Fatalf("user create --data-dir: %v, %q", res.err, res.stdout)
	}
	e := env.Real()
	e.FS, e.Logger = vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := cluster.Open(e, cluster.DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred, ok := c.ScramCredential("admin", sasl.ScramSHA256)
	if !ok || cred.Iterations != 8192 || !cred.Verify("from-env") {
		t.Fatalf("staged credential after Open: %+v %v", cred, ok)
	}
}

// TestUserCreateIgnoresDataDirFromTheEnvironment: with CAIRN_DATA_DIR set
// (as for cairn serve) and no --data-dir on the command line, user create
// asks the running cluster, which then holds the user, and stages nothing
// in that directory.
func TestUserCreateIgnoresDataDirFromTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = filepath.Join(dir, "data"), "127.0.0.1:0", ""
	srv, err := server.Start(cfg, vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	staging := filepath.Join(dir, "stopped")
	res := invocation{env: map[string]string{"CAIRN_DATA_DIR": staging, "CAIRN_PASSWORD": "alice-pw"},
		args: []string{"user", "create", "alice", "--brokers", srv.KafkaAddr(), "--timeout", "10s"}}.run(t)
	if res.err != nil || !strings.Contains(res.stdout, "created user alice") {
		t.Fatalf("user create with CAIRN_DATA_DIR set: %v, %q, %s", res.err, res.stdout, res.stderr)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Fatalf("user create staged into CAIRN_DATA_DIR: stat %s: %v", staging, err)
	}
	if cred, ok := srv.Cluster().ScramCredential("alice", sasl.ScramSHA512); !ok || !cred.Verify("alice-pw") {
		t.Fatalf("the running cluster has no credential for alice: %+v %v", cred, ok)
	}
}

// TestClientCommandsAuthenticate: a client command reaches a listener that
// requires SASL with --sasl-mechanism and a password or (OAUTHBEARER) a
// token from the environment, and is refused without them.
func TestClientCommandsAuthenticate(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	mustCairn(t, "user", "create", "admin", "--password", "admin-pw", "--data-dir", filepath.Join(dir, "data"))
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = filepath.Join(dir, "data"), "127.0.0.1:0", ""
	cfg.SASLMechanisms = []string{sasl.ScramSHA512, sasl.OAuthBearer}
	cfg.SASLOAuthJWKSFile, cfg.SASLOAuthIssuer, cfg.SASLOAuthAudience = jwksFile, "https://id.example", "cairn"
	srv, err := server.Start(cfg, vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://id.example", Audience: jwt.Audience{"cairn"},
		Subject: "svc", Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	brokers := []string{"--brokers", srv.KafkaAddr(), "--timeout", "5s"}
	for name, inv := range map[string]invocation{
		"scram": {env: map[string]string{"CAIRN_SASL_MECHANISM": "SCRAM-SHA-512", "CAIRN_SASL_USER": "admin", "CAIRN_SASL_PASSWORD": "admin-pw"},
			args: append([]string{"topic", "list"}, brokers...)},
		"oauthbearer": {env: map[string]string{"CAIRN_SASL_MECHANISM": "OAUTHBEARER", "CAIRN_SASL_TOKEN": token},
			args: append([]string{"topic", "list"}, brokers...)},
	} {
		if res := inv.run(t); res.err != nil {
			t.Errorf("%s: %v\n%s", name, res.err, res.stderr)
		}
	}
	if res := cairn(t, append([]string{"topic", "list", "--sasl-mechanism", "OAUTHBEARER"}, brokers...)...); res.err == nil || !strings.Contains(res.err.Error(), "--sasl-token") {
		t.Errorf("OAUTHBEARER without a token: %v", res.err)
	}
	if res := cairn(t, append([]string{"topic", "list"}, brokers...)...); res.err == nil {
		t.Error("topic list without authenticating succeeded")
	}
}
