package sasl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestParseOAuthBearer(t *testing.T) {
	for _, tc := range []struct {
		msg     string
		authzid string
		token   string
	}{
		{msg: "n,,\x01auth=Bearer abc\x01\x01", token: "abc"},
		{msg: "n,a=svc,\x01host=h\x01auth=bearer abc\x01port=9\x01\x01", authzid: "svc", token: "abc"},
	} {
		authzid, token, err := ParseOAuthBearer([]byte(tc.msg))
		if err != nil || authzid != tc.authzid || token != tc.token {
			t.Errorf("%q: %q %q %v", tc.msg, authzid, token, err)
		}
	}
	for _, bad := range []string{
		"", "n,,\x01auth=Bearer abc\x01", "n,,\x01auth=Basic abc\x01\x01", "n,,\x01auth=Bearer \x01\x01",
		"n,,\x01host=h\x01\x01", "p=x,,\x01auth=Bearer abc\x01\x01", "n,x=y,\x01auth=Bearer abc\x01\x01", "n,,\x01noequals\x01\x01",
	} {
		if _, _, err := ParseOAuthBearer([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v, want ErrMalformed", bad, err)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encode := func(k any) []byte {
		data, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "k1", Algorithm: "ES256"}}})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if set, err := ParseJWKS(encode(&key.PublicKey)); err != nil || len(set.Key("k1")) != 1 {
		t.Fatalf("a public JWKS: %v", err)
	}
	if _, err := ParseJWKS(encode(key)); err == nil {
		t.Fatal("a JWKS with a private key accepted")
	}
	for _, bad := range []string{`{"keys":[]}`, `{`, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
