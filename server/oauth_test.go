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
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestOAuthBearerFromJWKSFile: a server offering OAUTHBEARER reads its
// keys from the JWKS file at start and lets a client with a token signed
// by one of them produce; without the file it does not start.
func TestOAuthBearerFromJWKSFile(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	fsys := vfs.NewMem()
	if err := vfs.WriteFileAtomic(fsys, "/jwks.json", jwks); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", ""
	cfg.SASLMechanisms = []string{sasl.OAuthBearer}
	cfg.SASLOAuthIssuer, cfg.SASLOAuthAudience = "https://id.example", "cairn"
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := Start(cfg, fsys, logger); err == nil || !strings.Contains(err.Error(), "JWKS") {
		t.Fatalf("start without a JWKS file: %v", err)
	}
	cfg.SASLOAuthJWKSFile = "/jwks.json"
	s, err := Start(cfg, fsys, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://id.example", Audience: jwt.Audience{"cairn"},
		Subject: "svc", Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.SASL(oauth.Auth{Token: token}.AsMechanism()),
		kgo.DefaultProduceTopic("oauth"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("signed")}).FirstErr(); err != nil {
		t.Fatalf("produce with a token: %v", err)
	}
}

// TestOAuthBearerFromJWKSURL: a server reading its keys from a JWKS URL
// does not start when the URL cannot be read or a file is also given;
// started, it accepts an HTTP Bearer token of a key the issuer published
// after the start (the unknown kid makes it fetch the set again), and a
// Kafka OAUTHBEARER client with the same token produces: both paths check
// tokens against the same keys.
func TestOAuthBearerFromJWKSURL(t *testing.T) {
	first := newJWTIssuer(t, vfs.NewMem(), "/first.json")
	rotated := newJWTIssuerKid(t, vfs.NewMem(), "/rotated.json", "k2")
	var mu sync.Mutex
	served := first.jwks
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write(served)
	}))
	defer idp.Close()
	publish := func(jwks []byte) {
		mu.Lock()
		defer mu.Unlock()
		served = jwks
	}

	cfg := DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", "127.0.0.1:0"
	cfg.SASLMechanisms = []string{sasl.OAuthBearer}
	cfg.SASLOAuthIssuer, cfg.SASLOAuthAudience = "https://id.example", "cairn"
	cfg.HTTPAuth = HTTPAuthRequired
	fsys := vfs.NewMem()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.SASLOAuthJWKSURL = idp.URL + "/absent"
	publish([]byte("not a JWKS"))
	if _, err := Start(cfg, fsys, logger); err == nil || !strings.Contains(err.Error(), "OAUTHBEARER keys") {
		t.Fatalf("start with an unreadable JWKS URL: %v", err)
	}
	publish(first.jwks)
	cfg.SASLOAuthJWKSURL, cfg.SASLOAuthJWKSFile = idp.URL, "/jwks.json"
	if _, err := Start(cfg, fsys, logger); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("start with a JWKS file and URL: %v", err)
	}
	cfg.SASLOAuthJWKSFile = ""
	s, err := Start(cfg, fsys, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	appendAs := func(token string) error {
		t.Helper()
		c, err := client.New("http://"+s.HTTPAddr(), client.WithBearerToken(token), client.WithRetry(1, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Append(ctx, "orders", "o-1", client.Any, client.EventData{Type: "Placed"})
		return err
	}
	if err := appendAs(first.token(t, "svc")); err != nil {
		t.Fatalf("Bearer token of the start's key: %v", err)
	}
	var both, second jose.JSONWebKeySet
	if json.Unmarshal(first.jwks, &both) != nil || json.Unmarshal(rotated.jwks, &second) != nil {
		t.Fatal("the issuers' JWKS do not parse")
	}
	both.Keys = append(both.Keys, second.Keys...)
	published, err := json.Marshal(both)
	if err != nil {
		t.Fatal(err)
	}
	publish(published)
	token := rotated.token(t, "svc2")
	if err := appendAs(token); err != nil {
		t.Fatalf("Bearer token of a key published after the start: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.SASL(oauth.Auth{Token: token}.AsMechanism()),
		kgo.DefaultProduceTopic("oauth"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("signed")}).FirstErr(); err != nil {
		t.Fatalf("OAUTHBEARER produce with the rotated key's token: %v", err)
	}
}
