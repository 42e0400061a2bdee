package jwks

import (
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

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// signingKey is one issuer key: it signs tokens, and its public half goes
// into a JWKS.
type signingKey struct {
	private *ecdsa.PrivateKey
	public  jose.JSONWebKey
}

func newSigningKey(t *testing.T, kid string) signingKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{private: key, public: jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}}
}

func (k signingKey) token(t *testing.T, now time.Time) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.private, KeyID: k.public.KeyID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://id.example", Audience: jwt.Audience{"cairn"},
		Subject: "svc", Expiry: jwt.NewNumericDate(now.Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func encode(t *testing.T, keys ...signingKey) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.public)
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// issuer serves a JWKS over HTTP on 127.0.0.1 and counts the requests.
type issuer struct {
	mu       sync.Mutex
	body     []byte
	status   int
	requests int
	srv      *httptest.Server
}

func newIssuer(t *testing.T, body []byte) *issuer {
	i := &issuer{body: body, status: http.StatusOK}
	i.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i.mu.Lock()
		defer i.mu.Unlock()
		i.requests++
		w.WriteHeader(i.status)
		_, _ = w.Write(i.body)
	}))
	t.Cleanup(i.srv.Close)
	return i
}

func (i *issuer) serve(status int, body []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.status, i.body = status, body
}

func (i *issuer) count() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.requests
}

func openURL(t *testing.T, rawURL string, clock env.Clock) (*Set, error) {
	t.Helper()
	cfg, err := URLConfig(rawURL, nil, clock, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return Open(cfg)
}

func has(s *Set, kid string) bool { return len(s.Key(kid)) > 0 }

// TestURLKeyAddedAfterStartIsFetchedOnKidMiss: a token signed by a key
// published after the start is refused while the set does not hold it, and
// accepted once a token naming the unknown kid has caused a refresh; such
// refreshes happen at most once per MissRefreshMin, however many tokens
// name unknown keys.
func TestURLKeyAddedAfterStartIsFetchedOnKidMiss(t *testing.T) {
	clock := env.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k1, k2 := newSigningKey(t, "k1"), newSigningKey(t, "k2")
	idp := newIssuer(t, encode(t, k1))
	set, err := openURL(t, idp.srv.URL+"/jwks.json", clock)
	if err != nil {
		t.Fatal(err)
	}
	oauth := sasl.OAuthConfig{Keys: set, Issuer: "https://id.example", Audience: "cairn"}
	if _, _, err := oauth.ValidateToken(k1.token(t, clock.Now()), clock.Now()); err != nil {
		t.Fatalf("a token of the start's key: %v", err)
	}
	if got := idp.count(); got != 1 {
		t.Fatalf("%d fetches after a known kid, want only the start's", got)
	}

	// The issuer rotates: k2 is published after a token naming it arrived
	// and refreshed the set once.
	if _, _, err := oauth.ValidateToken(k2.token(t, clock.Now()), clock.Now()); err == nil {
		t.Fatal("a token of an unpublished key accepted")
	}
	idp.serve(http.StatusOK, encode(t, k1, k2))
	for range 5 {
		if _, _, err := oauth.ValidateToken(k2.token(t, clock.Now()), clock.Now()); err == nil {
			t.Fatal("an unknown kid refreshed the set again within MissRefreshMin")
		}
	}
	if got := idp.count(); got != 2 {
		t.Fatalf("%d fetches, want 2: the start and one kid miss", got)
	}
	clock.Advance(URLMissRefreshMin)
	subject, _, err := oauth.ValidateToken(k2.token(t, clock.Now()), clock.Now())
	if err != nil || subject != "svc" {
		t.Fatalf("a token of the new key after the kid-miss refresh: %q, %v", subject, err)
	}
	if got := idp.count(); got != 3 {
		t.Fatalf("%d fetches, want 3", got)
	}
}

// TestURLRemovedKeyRefusedAfterRefresh: a key the issuer withdraws keeps
// verifying until the keys are RefreshInterval old, then the next check
// fetches the set again and refuses it, while the remaining key still
// verifies.
func TestURLRemovedKeyRefusedAfterRefresh(t *testing.T) {
	clock := env.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k1, k2 := newSigningKey(t, "k1"), newSigningKey(t, "k2")
	idp := newIssuer(t, encode(t, k1, k2))
	set, err := openURL(t, idp.srv.URL, clock)
	if err != nil {
		t.Fatal(err)
	}
	idp.serve(http.StatusOK, encode(t, k1))
	clock.Advance(URLRefreshInterval - time.Second)
	if !has(set, "k2") || idp.count() != 1 {
		t.Fatalf("keys refreshed before they were %s old (%d fetches)", URLRefreshInterval, idp.count())
	}
	clock.Advance(time.Second)
	if has(set, "k2") {
		t.Fatal("a withdrawn key still verifies after the periodic refresh")
	}
	if !has(set, "k1") || idp.count() != 2 {
		t.Fatalf("k1 lost or %d fetches, want 2", idp.count())
	}
}

// TestURLFailingRefreshKeepsTheKeys: an HTTP error, a document that is not
// a JWKS and an issuer that is gone all leave the previous keys in use.
func TestURLFailingRefreshKeepsTheKeys(t *testing.T) {
	clock := env.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	k1 := newSigningKey(t, "k1")
	idp := newIssuer(t, encode(t, k1))
	set, err := openURL(t, idp.srv.URL, clock)
	if err != nil {
		t.Fatal(err)
	}
	fetches := idp.count()
	for _, failure := range []struct {
		name   string
		status int
		body   string
	}{
		{"HTTP 503", http.StatusServiceUnavailable, "down"},
		{"not JSON", http.StatusOK, "<html>"},
		{"no keys", http.StatusOK, `{"keys":[]}`},
	} {
		idp.serve(failure.status, []byte(failure.body))
		clock.Advance(URLRefreshInterval)
		if !has(set, "k1") {
			t.Fatalf("%s: the previous key was dropped", failure.name)
		}
		if fetches++; idp.count() != fetches {
			t.Fatalf("%s: %d fetches, want %d (the refresh was not tried)", failure.name, idp.count(), fetches)
		}
	}
	idp.srv.Close()
	clock.Advance(URLRefreshInterval)
	if !has(set, "k1") {
		t.Fatal("an unreachable issuer dropped the previous key")
	}
}

// TestOpenFailsClearly: a start whose keys cannot be read says why.
func TestOpenFailsClearly(t *testing.T) {
	idp := newIssuer(t, []byte("missing"))
	idp.serve(http.StatusNotFound, []byte("missing"))
	if _, err := openURL(t, idp.srv.URL, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a 404 at start: %v, want an error naming the status", err)
	}
	idp.serve(http.StatusOK, []byte(`{"keys":[]}`))
	if _, err := openURL(t, idp.srv.URL, nil); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("an empty set at start: %v", err)
	}
	if _, err := Open(FileConfig(vfs.NewMem(), "/absent.json", nil, quiet)); err == nil || !strings.Contains(err.Error(), "/absent.json") {
		t.Errorf("a missing file at start: %v, want an error naming it", err)
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://id.example/.well-known/jwks.json", true},
		{"http://127.0.0.1:8080/jwks", true},
		{"http://[::1]/jwks", true},
		{"http://localhost/jwks", true},
		{"http://id.example/jwks", false},
		{"http://10.0.0.5/jwks", false},
		{"ftp://id.example/jwks", false},
		{"/etc/jwks.json", false},
		{"https:///jwks", false},
	} {
		if err := CheckURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}

// TestFileReloadedWhenChanged: a JWKS file is read again once its keys are
// FileRefreshInterval old, so a replaced file's keys take over and the
// old ones stop verifying; a broken replacement keeps the previous keys.
func TestFileReloadedWhenChanged(t *testing.T) {
	clock := env.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fsys := vfs.NewMem()
	k1, k2 := newSigningKey(t, "k1"), newSigningKey(t, "k2")
	if err := vfs.WriteFileAtomic(fsys, "/jwks.json", encode(t, k1)); err != nil {
		t.Fatal(err)
	}
	set, err := Open(FileConfig(fsys, "/jwks.json", clock, quiet))
	if err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFileAtomic(fsys, "/jwks.json", encode(t, k2)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(FileRefreshInterval)
	if !has(set, "k2") || has(set, "k1") {
		t.Fatalf("after the file changed: k2 %v, k1 %v; want only k2", has(set, "k2"), has(set, "k1"))
	}
	if err := vfs.WriteFileAtomic(fsys, "/jwks.json", []byte("{")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(FileRefreshInterval)
	if !has(set, "k2") {
		t.Fatal("a broken file dropped the previous keys")
	}
	if err := fsys.Remove("/jwks.json"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(FileRefreshInterval)
	if !has(set, "k2") {
		t.Fatal("a removed file dropped the previous keys")
	}
}
