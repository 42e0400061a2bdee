package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/cairnlog/cairn/auth/sasl"
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
