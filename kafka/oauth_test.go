package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/env"
)

// tokenIssuer signs JWTs with one key of a JWKS.
type tokenIssuer struct {
	t      *testing.T
	key    *ecdsa.PrivateKey
	keyID  string
	public jose.JSONWebKeySet
}

func newTokenIssuer(t *testing.T, keyID string) *tokenIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	public := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: keyID, Algorithm: string(jose.ES256), Use: "sig"}}}
	return &tokenIssuer{t: t, key: key, keyID: keyID, public: public}
}

func (ti *tokenIssuer) sign(claims jwt.Claims) string {
	ti.t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ti.key, KeyID: ti.keyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		ti.t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		ti.t.Fatal(err)
	}
	return token
}

var oauthNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func goodClaims() jwt.Claims {
	return jwt.Claims{Issuer: "https://id.example", Audience: jwt.Audience{"cairn"}, Subject: "svc-orders",
		IssuedAt: jwt.NewNumericDate(oauthNow), Expiry: jwt.NewNumericDate(oauthNow.Add(time.Hour))}
}

func startOAuthServer(t *testing.T, issuer *tokenIssuer, clock env.Clock, edit ...func(*Config)) (*testServer, *logBuffer) {
	t.Helper()
	edits := append([]func(*Config){func(c *Config) {
		c.SASL.Mechanisms = []string{sasl.OAuthBearer, sasl.ScramSHA512}
		c.SASL.OAuthBearer = sasl.OAuthConfig{Keys: &issuer.public, Issuer: "https://id.example", Audience: "cairn"}
		c.SASL.Limiter.Burst = 100
	}}, edit...)
	return startSASLServer(t, serverSetup{clock: clock}, edits...)
}

// TestOAuthBearerFranzGo: franz-go authenticates with a JWT signed by a
// key of the JWKS, from the issuer, for the audience, unexpired; the
// principal is its subject. Tokens failing any of these are refused.
func TestOAuthBearerFranzGo(t *testing.T) {
	issuer := newTokenIssuer(t, "k1")
	clock := env.NewManualClock(oauthNow)
	ts, logs := startOAuthServer(t, issuer, clock)
	ping := func(token string) error {
		cl := ts.client(t, kgo.SASL(oauth.Auth{Token: token}.AsMechanism()), kgo.RequestRetries(0))
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return cl.Ping(ctx)
	}
	if err := ping(issuer.sign(goodClaims())); err != nil {
		t.Fatalf("a good token: %v", err)
	}
	if len(logs.lines("log=audit", "outcome=success", "mechanism=OAUTHBEARER", "principal=User:svc-orders")) != 1 {
		t.Fatal("no audit line of svc-orders' success")
	}
	other := newTokenIssuer(t, "k1") // same key id, another key
	bad := map[string]string{"signed by another key": other.sign(goodClaims())}
	unknownKey := newTokenIssuer(t, "k2")
	bad["signed by a key not in the JWKS"] = unknownKey.sign(goodClaims())
	for name, edit := range map[string]func(*jwt.Claims){
		"expired":        func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(oauthNow.Add(-time.Minute)) },
		"without expiry": func(c *jwt.Claims) { c.Expiry = nil },
		"other issuer":   func(c *jwt.Claims) { c.Issuer = "https://evil.example" },
		"other audience": func(c *jwt.Claims) { c.Audience = jwt.Audience{"someone-else"} },
		"not yet valid":  func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(oauthNow.Add(time.Hour)) },
		"no subject":     func(c *jwt.Claims) { c.Subject = "" },
	} {
		claims := goodClaims()
		edit(&claims)
		bad[name] = issuer.sign(claims)
	}
	bad["not a JWT"] = "not-a-jwt"
	for name, token := range bad {
		if err := ping(token); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("token %s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}
}

// TestOAuthBearerSessionEndsWithToken (KIP-368): the session lifetime
// answered is the token's remaining life when shorter than the listener's,
// and the connection may only re-authenticate after it.
func TestOAuthBearerSessionEndsWithToken(t *testing.T) {
	issuer := newTokenIssuer(t, "k1")
	clock := env.NewManualClock(oauthNow)
	ts, _ := startOAuthServer(t, issuer, clock, func(c *Config) { c.SASL.SessionLifetime = time.Hour })
	claims := goodClaims()
	claims.Expiry = jwt.NewNumericDate(oauthNow.Add(30 * time.Second))
	rc := ts.dial(t)
	if resp := saslHandshake(rc, sasl.OAuthBearer); resp.ErrorCode != 0 {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = 2, []byte("n,,\x01auth=Bearer "+issuer.sign(claims)+"\x01\x01")
	resp := rc.roundTrip(req).(*kmsg.SASLAuthenticateResponse)
	if resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 30_000 {
		t.Fatalf("login: %v, lifetime %d ms, want 30000", kerr.ErrorForCode(resp.ErrorCode), resp.SessionLifetimeMillis)
	}
	rc.roundTrip(metadataRequest(12))
	clock.Advance(30 * time.Second)
	rc.send(metadataRequest(12))
	if !rc.closed() {
		t.Fatal("a request after the token expired left the connection open")
	}
}

// TestOAuthBearerNeedsKeys: a listener offering OAUTHBEARER without keys,
// issuer or audience is refused at start.
func TestOAuthBearerNeedsKeys(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdvertisedAddr = "127.0.0.1:9092"
	cfg.SASL.Mechanisms = []string{sasl.OAuthBearer}
	if err := cfg.Validate(); err == nil {
		t.Fatal("OAUTHBEARER without a JWKS validated")
	}
}
