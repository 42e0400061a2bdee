package sasl

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// users is a Credentials of fixed credentials.
type users map[[2]string]Credential

func (u users) ScramCredential(user, mechanism string) (Credential, bool) {
	c, ok := u[[2]string{user, mechanism}]
	return c, ok
}

func credential(t testing.TB, mechanism, password string) Credential {
	t.Helper()
	salt := []byte("0123456789abcdef")
	salted, err := SaltPassword(mechanism, password, salt, IterationsMin)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCredential(mechanism, salt, salted, IterationsMin)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newServer(t testing.TB, creds Credentials) *Server {
	t.Helper()
	s, err := NewServer(creds, rand.NewChaCha8([32]byte{7}))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// converse runs franz-go's client mechanism against a conversation and
// returns how it ended.
func converse(t testing.TB, s *Server, client kgosasl.Mechanism) (user string, err error) {
	t.Helper()
	conv, err := s.Start(client.Name())
	if err != nil {
		t.Fatal(err)
	}
	session, token, err := client.Authenticate(context.Background(), "127.0.0.1:9092")
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		reply, done, err := conv.Step(token)
		if err != nil {
			return conv.User(), err
		}
		clientDone, next, err := session.Challenge(reply)
		if err != nil {
			return conv.User(), err
		}
		if done {
			if !clientDone {
				t.Fatal("server done before the client")
			}
			return conv.User(), nil
		}
		token = next
	}
	t.Fatal("exchange did not end")
	return "", nil
}

// TestScramAgainstFranzGo: franz-go's SCRAM client, an independent
// implementation of RFC 5802, authenticates with the right password (and
// verifies the server's signature), and fails with a wrong one or an
// unknown user.
func TestScramAgainstFranzGo(t *testing.T) {
	for _, mechanism := range []string{ScramSHA256, ScramSHA512} {
		s := newServer(t, users{{"alice", mechanism}: credential(t, mechanism, "wonder,land=")})
		client := func(user, pass string) kgosasl.Mechanism {
			if mechanism == ScramSHA256 {
				return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
			}
			return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
		}
		if user, err := converse(t, s, client("alice", "wonder,land=")); err != nil || user != "alice" {
			t.Fatalf("%s right password: %q %v", mechanism, user, err)
		}
		if _, err := converse(t, s, client("alice", "wrong")); !errors.Is(err, ErrAuthentication) {
			t.Fatalf("%s wrong password: %v, want ErrAuthentication", mechanism, err)
		}
		if user, err := converse(t, s, client("mallory", "x")); !errors.Is(err, ErrAuthentication) || user != "mallory" {
			t.Fatalf("%s unknown user: %q %v, want ErrAuthentication", mechanism, user, err)
		}
	}
}

// TestScramUnknownUserLooksKnown: an unknown user gets a salt and count
// like a known one's, the same salt each time.
func TestScramUnknownUserLooksKnown(t *testing.T) {
	s := newServer(t, users{})
	first := func() string {
		conv, _ := s.Start(ScramSHA256)
		reply, _, err := conv.Step([]byte("n,,n=ghost,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		_, salt, _ := strings.Cut(string(reply), ",s=")
		return salt
	}
	if a, b := first(), first(); a != b || !strings.HasSuffix(a, ",i=4096") {
		t.Fatalf("unknown user's server-first salts %q and %q", a, b)
	}
}

func TestPlain(t *testing.T) {
	s := newServer(t, users{{"alice", ScramSHA512}: credential(t, ScramSHA512, "pw"), {"bob", ScramSHA256}: credential(t, ScramSHA256, "pw2")})
	for _, tc := range []struct {
		token string
		ok    bool
	}{
		{"\x00alice\x00pw", true},
		{"alice\x00alice\x00pw", true},
		{"\x00bob\x00pw2", true}, // only a SCRAM-SHA-256 credential
		{"\x00alice\x00pw2", false},
		{"bob\x00alice\x00pw", false}, // acting as another user
		{"\x00carol\x00pw", false},
		{"\x00alice", false},
		{"\x00\x00pw", false},
	} {
		conv, _ := s.Start(Plain)
		_, done, err := conv.Step([]byte(tc.token))
		if tc.ok != (err == nil && done) {
			t.Errorf("PLAIN %q: done %v, %v", tc.token, done, err)
		}
	}
}

func TestParseClientFirst(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		user string
		bad  error
	}{
		{msg: "n,,n=alice,r=abc", user: "alice"},
		{msg: "y,,n=a=2Cb=3Dc,r=abc", user: "a,b=c"},
		{msg: "n,a=alice,n=alice,r=abc,tokenauth=true", user: "alice"},
		{msg: "p=tls-unique,,n=alice,r=abc", bad: ErrUnsupported},
		{msg: "n,,m=ext,n=alice,r=abc", bad: ErrUnsupported},
		{msg: "n,,n=al=ce,r=abc", bad: ErrMalformed},
		{msg: "n,,n=,r=abc", bad: ErrMalformed},
		{msg: "n,,n=alice,r=", bad: ErrMalformed},
		{msg: "x,,n=alice,r=abc", bad: ErrMalformed},
		{msg: "n,,n=alice", bad: ErrMalformed},
		{msg: "n", bad: ErrMalformed},
	} {
		cf, err := parseClientFirst(tc.msg)
		if tc.bad != nil {
			if !errors.Is(err, tc.bad) {
				t.Errorf("%q: %v, want %v", tc.msg, err, tc.bad)
			}
			continue
		}
		if err != nil || cf.user != tc.user {
			t.Errorf("%q: user %q, %v; want %q", tc.msg, cf.user, err, tc.user)
		}
	}
}

func TestParseClientFinal(t *testing.T) {
	cf, err := parseClientFinal("c=biws,r=abcdef,p=AAEC")
	if err != nil || string(cf.channelBinding) != "n,," || cf.nonce != "abcdef" || !bytes.Equal(cf.proof, []byte{0, 1, 2}) || cf.withoutProof != "c=biws,r=abcdef" {
		t.Fatalf("parsed %+v, %v", cf, err)
	}
	for _, bad := range []string{"c=biws,r=abc", "c=biws,p=AAEC", "r=abc,c=biws,p=AAEC", "c=!!,r=a,p=AAEC", "c=biws,r=a,p=!!"} {
		if _, err := parseClientFinal(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v, want ErrMalformed", bad, err)
		}
	}
}

// TestScramFinalChecks: a client-final whose nonce or channel binding does
// not match the exchange is refused even with a correct proof's shape.
func TestScramFinalChecks(t *testing.T) {
	s := newServer(t, users{{"alice", ScramSHA256}: credential(t, ScramSHA256, "pw")})
	conv, _ := s.Start(ScramSHA256)
	if _, _, err := conv.Step([]byte("n,,n=alice,r=abc")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conv.Step([]byte("c=biws,r=abcOTHER,p=AAEC")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("changed nonce: %v", err)
	}
	if _, _, err := conv.Step([]byte("more")); err == nil {
		t.Fatal("a token after the end was taken")
	}
}

func TestCredentialShape(t *testing.T) {
	salted := make([]byte, 32)
	for _, tc := range []struct {
		mechanism  string
		salt       []byte
		iterations int32
	}{
		{ScramSHA256, []byte("12345678"), 4095},
		{ScramSHA256, []byte("12345678"), 16385},
		{ScramSHA256, []byte("1234567"), 4096},
		{"SCRAM-SHA-1", []byte("12345678"), 4096},
	} {
		if _, err := NewCredential(tc.mechanism, tc.salt, salted, tc.iterations); err == nil {
			t.Errorf("%+v accepted", tc)
		}
	}
	if _, err := NewCredential(ScramSHA512, []byte("12345678"), salted, 4096); err == nil {
		t.Error("a 32-byte salted password accepted for SCRAM-SHA-512")
	}
}

// TestScramAcceptsOldLibrdkafkaNonce: librdkafka before 2.6.1 repeats its
// own nonce in front of the whole one; that exact form is accepted (the
// proof still decides), any other is not.
func TestScramAcceptsOldLibrdkafkaNonce(t *testing.T) {
	cred := credential(t, ScramSHA256, "pw")
	s := newServer(t, users{{"alice", ScramSHA256}: cred})
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{{"", true}, {"abc", true}, {"ab", false}, {"abcabc", false}} {
		conv, _ := s.Start(ScramSHA256)
		first, _, err := conv.Step([]byte("n,,n=alice,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		nonce := strings.TrimPrefix(strings.Split(string(first), ",")[0], "r=")
		withoutProof := "c=biws,r=" + tc.prefix + nonce
		h := scramHashes[ScramSHA256]
		salted, _ := SaltPassword(ScramSHA256, "pw", cred.Salt, cred.Iterations)
		clientKey := mac(h, salted, []byte("Client Key"))
		signature := mac(h, digest(h, clientKey), []byte("n=alice,r=abc,"+string(first)+","+withoutProof))
		proof := make([]byte, len(clientKey))
		for i := range proof {
			proof[i] = clientKey[i] ^ signature[i]
		}
		_, done, err := conv.Step([]byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)))
		if tc.ok != (done && err == nil) {
			t.Errorf("nonce prefixed with %q: done %v, %v", tc.prefix, done, err)
		}
	}
}
