package sasl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// OAuthConfig is how OAUTHBEARER tokens (RFC 7628) are checked: a JWT
// signed by one of Keys (a JWKS, each key named by its kid), from Issuer,
// for Audience, not expired (exp is required). The principal is the token's
// subject.
type OAuthConfig struct {
	Keys     KeySet
	Issuer   string
	Audience string
	// ClockSkew is the leeway on exp, nbf and iat (default 30 s).
	ClockSkew time.Duration
}

// KeySet gives the keys a token's kid names. A *jose.JSONWebKeySet is a
// fixed one; package jwks keeps one current from a file or a URL.
type KeySet interface {
	Key(kid string) []jose.JSONWebKey
}

// ParseJWKS reads a JSON Web Key Set, refusing one without keys or with a
// private key in it (the server only verifies).
func ParseJWKS(data []byte) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return set, fmt.Errorf("parse JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return set, errors.New("JWKS holds no key")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return set, fmt.Errorf("JWKS key %q is private: give the server only public keys", k.KeyID)
		}
		if !k.Valid() {
			return set, fmt.Errorf("JWKS key %q is not a usable key", k.KeyID)
		}
	}
	return set, nil
}

// Check validates c as a whole.
func (c OAuthConfig) Check() error {
	switch {
	case c.Keys == nil:
		return errors.New("OAUTHBEARER needs a JWKS")
	case c.Issuer == "" || c.Audience == "":
		return errors.New("OAUTHBEARER needs the expected issuer and audience")
	case c.ClockSkew < 0:
		return errors.New("OAUTHBEARER clock skew must not be negative")
	}
	return nil
}

// signatureAlgorithms are the JWS algorithms accepted: asymmetric only, so
// that no key in a JWKS can be used to forge tokens.
var signatureAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// ParseOAuthBearer reads RFC 7628's client initial response:
// gs2-header %x01 "auth=Bearer " token %x01 *(key=value %x01) %x01.
func ParseOAuthBearer(message []byte) (authzid, token string, err error) {
	s := string(message)
	header, rest, ok := strings.Cut(s, "\x01")
	if !ok || !strings.HasPrefix(header, "n,") && !strings.HasPrefix(header, "y,") || !strings.HasSuffix(header, ",") {
		return "", "", fmt.Errorf("%w: OAUTHBEARER GS2 header", ErrMalformed)
	}
	if authz := strings.TrimSuffix(header[2:], ","); authz != "" {
		name, found := strings.CutPrefix(authz, "a=")
		if !found {
			return "", "", fmt.Errorf("%w: OAUTHBEARER authzid %q", ErrMalformed, authz)
		}
		if authzid, err = decodeName(name); err != nil {
			return "", "", err
		}
	}
	body, ok := strings.CutSuffix(rest, "\x01\x01")
	if !ok {
		return "", "", fmt.Errorf("%w: OAUTHBEARER message not ended by two %%x01", ErrMalformed)
	}
	for _, pair := range strings.Split(body, "\x01") {
		key, value, ok := strings.Cut(pair, "=")
		if !ok {
			return "", "", fmt.Errorf("%w: OAUTHBEARER key-value %q", ErrMalformed, pair)
		}
		if key == "auth" {
			scheme, bearer, ok := strings.Cut(value, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || bearer == "" {
				return "", "", fmt.Errorf("%w: OAUTHBEARER auth value is not a bearer token", ErrMalformed)
			}
			token = bearer
		}
	}
	if token == "" {
		return "", "", fmt.Errorf("%w: OAUTHBEARER message without a token", ErrMalformed)
	}
	return authzid, token, nil
}

// ValidateToken checks a JWT against c at now and returns its subject and
// expiry.
func (c OAuthConfig) ValidateToken(token string, now time.Time) (subject string, expiry time.Time, err error) {
	parsed, err := jwt.ParseSigned(token, signatureAlgorithms)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: token: %v", ErrAuthentication, err)
	}
	if len(parsed.Headers) != 1 {
		return "", time.Time{}, fmt.Errorf("%w: token with %d signatures", ErrAuthentication, len(parsed.Headers))
	}
	keys := c.Keys.Key(parsed.Headers[0].KeyID)
	if len(keys) == 0 {
		return "", time.Time{}, fmt.Errorf("%w: token signed with key %q, not in the JWKS", ErrAuthentication, parsed.Headers[0].KeyID)
	}
	var claims jwt.Claims
	verified := false
	for _, k := range keys {
		if parsed.Claims(k.Key, &claims) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return "", time.Time{}, fmt.Errorf("%w: token signature does not verify", ErrAuthentication)
	}
	skew := c.ClockSkew
	if skew == 0 {
		skew = 30 * time.Second
	}
	expected := jwt.Expected{Issuer: c.Issuer, AnyAudience: jwt.Audience{c.Audience}, Time: now}
	if err := claims.ValidateWithLeeway(expected, skew); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: token: %v", ErrAuthentication, err)
	}
	if claims.Expiry == nil {
		return "", time.Time{}, fmt.Errorf("%w: token without an expiry", ErrAuthentication)
	}
	if claims.Subject == "" || len(claims.Subject) > NameBytesMax {
		return "", time.Time{}, fmt.Errorf("%w: token subject empty or too long", ErrAuthentication)
	}
	return claims.Subject, claims.Expiry.Time(), nil
}
