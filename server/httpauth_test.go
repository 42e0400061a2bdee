package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/storage/vfs"
)

// addHTTPUser gives name a SCRAM-SHA-512 credential for password.
func addHTTPUser(t *testing.T, s *Server, name, password string) {
	t.Helper()
	salt := []byte("salt-of-" + name)
	salted, err := sasl.SaltPassword(sasl.ScramSHA512, password, salt, sasl.IterationsMin)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Cluster().UpsertScramCredential(name, sasl.ScramSHA512, sasl.IterationsMin, salt, salted); err != nil {
		t.Fatal(err)
	}
}

// allowTopic grants principal op on topic.
func allowTopic(t *testing.T, s *Server, principal string, op acl.Operation, topic string) {
	t.Helper()
	b := acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: topic, PatternType: acl.PatternLiteral,
		Principal: principal, Host: acl.Wildcard, Operation: op, Permission: acl.PermissionAllow}
	if err := s.Cluster().CreateACLs([]acl.Binding{b}); err != nil {
		t.Fatal(err)
	}
}

// jwtIssuer signs tokens with a key (kid "k1" unless newJWTIssuerKid
// names another) whose JWKS it writes to fsys.
type jwtIssuer struct {
	signer jose.Signer
	jwks   []byte // the public key, as a JWKS
}

func newJWTIssuer(t *testing.T, fsys vfs.FS, path string) *jwtIssuer {
	t.Helper()
	return newJWTIssuerKid(t, fsys, path, "k1")
}

func newJWTIssuerKid(t *testing.T, fsys vfs.FS, path, kid string) *jwtIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFileAtomic(fsys, path, jwks); err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &jwtIssuer{signer: signer, jwks: jwks}
}

func (j *jwtIssuer) token(t *testing.T, subject string) string {
	t.Helper()
	token, err := jwt.Signed(j.signer).Claims(jwt.Claims{Issuer: "https://id.example", Audience: jwt.Audience{"cairn"},
		Subject: subject, Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestHTTPAuthRequired: with --http-auth required and the authorizer on,
// an event-store call without credentials, or with a wrong password or a
// token of another key, is Unauthenticated; a super user's Basic
// credentials append; a user authenticated by Basic or by a Bearer JWT is
// refused (PermissionDenied) until an ACL grants it Write, then appends.
// /metrics stays open without --http-auth-metrics and asks for
// credentials with it.
func TestHTTPAuthRequired(t *testing.T) {
	fsys := vfs.NewMem()
	issuer := newJWTIssuer(t, fsys, "/jwks.json")
	other := newJWTIssuer(t, vfs.NewMem(), "/other.json")
	start := func(metrics bool) *Server {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", "127.0.0.1:0"
		cfg.SASLMechanisms = []string{sasl.ScramSHA512, sasl.OAuthBearer}
		cfg.SASLOAuthJWKSFile, cfg.SASLOAuthIssuer, cfg.SASLOAuthAudience = "/jwks.json", "https://id.example", "cairn"
		cfg.Authorizer, cfg.SuperUsers = true, []auth.Principal{auth.User("admin")}
		cfg.HTTPAuth, cfg.HTTPAuthMetrics = HTTPAuthRequired, metrics
		s, err := Start(cfg, fsys, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := start(false)
	defer func() { _ = s.Close() }()
	addHTTPUser(t, s, "admin", "admin-pw")
	addHTTPUser(t, s, "bob", "bob-pw")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "http://" + s.HTTPAddr()
	appendAs := func(stream string, opts ...client.Option) error {
		t.Helper()
		c, err := client.New(url, append(opts, client.WithRetry(1, 0))...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Append(ctx, "orders", stream, client.Any, client.EventData{Type: "Placed"})
		return err
	}
	for name, opts := range map[string][]client.Option{
		"no credentials":     nil,
		"wrong password":     {client.WithBasicAuth("bob", "admin-pw")},
		"unknown user":       {client.WithBasicAuth("mallory", "x")},
		"token of other key": {client.WithBearerToken(other.token(t, "svc"))},
	} {
		if err := appendAs("o-1", opts...); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("%s: %v, want Unauthenticated", name, err)
		}
	}
	if err := appendAs("o-1", client.WithBasicAuth("admin", "admin-pw")); err != nil {
		t.Fatalf("admin (super user) with Basic: %v", err)
	}
	bob := client.WithBasicAuth("bob", "bob-pw")
	svc := client.WithBearerToken(issuer.token(t, "svc"))
	for name, opt := range map[string]client.Option{"bob (Basic)": bob, "svc (Bearer)": svc} {
		if err := appendAs("o-2", opt); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("%s without Write: %v, want PermissionDenied", name, err)
		}
	}
	allowTopic(t, s, "User:bob", acl.OpWrite, "orders")
	allowTopic(t, s, "User:svc", acl.OpWrite, "orders")
	for name, opt := range map[string]client.Option{"bob (Basic)": bob, "svc (Bearer)": svc} {
		if err := appendAs("o-2", opt); err != nil {
			t.Fatalf("%s with Write: %v", name, err)
		}
	}

	get := func(s *Server, path string, user, password string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTPAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(s, "/metrics", "", ""); code != http.StatusOK {
		t.Fatalf("/metrics without --http-auth-metrics: %d", code)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = start(true)
	if code := get(s, "/metrics", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics with --http-auth-metrics, no credentials: %d, want 401", code)
	}
	if code := get(s, "/healthz", "bob", "bob-pw"); code != http.StatusOK {
		t.Fatalf("/healthz with --http-auth-metrics as bob: %d", code)
	}
}

// TestHTTPAuthThroughFollower: on a three-node cluster requiring HTTP
// authentication, a user granted Write on a topic appends through every
// node, the followers forwarding the call with its credentials so that
// the leader authorizes that user (not anonymous); another user without
// the ACL is refused through every node.
func TestHTTPAuthThroughFollower(t *testing.T) {
	tc := startClusterWith(t, &testCluster{t: t, config: func(_ int32, cfg *Config) {
		cfg.Authorizer, cfg.HTTPAuth = true, HTTPAuthRequired
	}})
	addHTTPUser(t, tc.servers[1], "bob", "bob-pw")
	addHTTPUser(t, tc.servers[1], "eve", "eve-pw")
	allowTopic(t, tc.servers[1], "User:bob", acl.OpWrite, "orders")
	allowTopic(t, tc.servers[1], "User:bob", acl.OpCreate, "orders")
	allowTopic(t, tc.servers[1], "User:bob", acl.OpRead, "orders")
	waitUsers(t, tc, "bob", "eve")
	for id, s := range tc.servers {
		for deadline := time.Now().Add(10 * time.Second); s.Cluster().ACLs().Len() < 3; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d has %d ACLs, want 3", id, s.Cluster().ACLs().Len())
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for id := int32(1); id <= 3; id++ {
		url := "http://" + tc.servers[id].HTTPAddr()
		bob, err := client.New(url, client.WithBasicAuth("bob", "bob-pw"), client.WithRetry(20, 50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer bob.Close()
		if _, err := bob.Append(ctx, "orders", "order-1", client.Any, client.EventData{Type: "Placed"}); err != nil {
			t.Fatalf("bob appends through node %d: %v", id, err)
		}
		eve, err := client.New(url, client.WithBasicAuth("eve", "eve-pw"), client.WithRetry(20, 50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer eve.Close()
		if _, err := eve.Append(ctx, "orders", "order-1", client.Any, client.EventData{Type: "Placed"}); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("eve appends through node %d: %v, want PermissionDenied", id, err)
		}
	}
	bob, err := client.New("http://"+tc.servers[2].HTTPAddr(), client.WithBasicAuth("bob", "bob-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	page, err := bob.ReadStream(ctx, "orders", "order-1")
	if err != nil {
		t.Fatalf("bob reads through node 2: %v", err)
	}
	if len(page.Events) != 3 {
		t.Fatalf("bob read %d events, want 3", len(page.Events))
	}
	// A subscription is relayed with the caller's credentials too.
	for id := int32(1); id <= 3; id++ {
		c, err := client.New("http://"+tc.servers[id].HTTPAddr(), client.WithBasicAuth("bob", "bob-pw"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sub, err := c.Subscribe(ctx, "orders", "order-1")
		if err != nil {
			t.Fatalf("bob subscribes through node %d: %v", id, err)
		}
		if _, err := sub.Recv(); err != nil {
			t.Fatalf("bob's subscription through node %d: %v", id, err)
		}
		sub.Close()
	}
}
