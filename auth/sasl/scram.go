package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// Mechanism names as clients send them in SaslHandshake.
const (
	Plain        = "PLAIN"
	ScramSHA256  = "SCRAM-SHA-256"
	ScramSHA512  = "SCRAM-SHA-512"
	OAuthBearer  = "OAUTHBEARER"
	mechanismMax = 64
)

// Iteration bounds of a SCRAM credential, Kafka's: fewer than 4096 is
// refused by RFC 7677's advice, more than 16384 by Kafka's broker.
const (
	IterationsMin     = 4096
	IterationsMax     = 16384
	IterationsDefault = 4096
	// SaltBytesMin and SaltBytesMax bound a stored salt.
	SaltBytesMin = 8
	SaltBytesMax = 128
	// NameBytesMax bounds a user name.
	NameBytesMax = 255
)

// Errors of a conversation. ErrAuthentication is the one a client hears:
// wrong password, unknown user and malformed proofs alike.
var (
	ErrAuthentication = errors.New("authentication failed: invalid credentials")
	ErrMalformed      = errors.New("malformed SASL token")
	ErrUnsupported    = errors.New("unsupported SASL feature")
)

// scramHash is one SCRAM mechanism's hash.
type scramHash struct {
	name string
	new  func() hash.Hash
	size int
}

var scramHashes = map[string]scramHash{
	ScramSHA256: {ScramSHA256, sha256.New, sha256.Size},
	ScramSHA512: {ScramSHA512, sha512.New, sha512.Size},
}

// IsScram reports whether mechanism is one of the SCRAM mechanisms served.
func IsScram(mechanism string) bool {
	_, ok := scramHashes[mechanism]
	return ok
}

// Credential is a user's stored SCRAM credential for one mechanism.
type Credential struct {
	Mechanism  string
	Salt       []byte
	Iterations int32
	StoredKey  []byte
	ServerKey  []byte
}

// SaltPassword is Hi(password, salt, iterations) of mechanism: what Kafka's
// AlterUserScramCredentials carries instead of the password.
func SaltPassword(mechanism, password string, salt []byte, iterations int32) ([]byte, error) {
	h, ok := scramHashes[mechanism]
	if !ok {
		return nil, fmt.Errorf("%w: mechanism %q", ErrUnsupported, mechanism)
	}
	out, err := pbkdf2.Key(h.new, password, salt, int(iterations), h.size)
	if err != nil {
		return nil, fmt.Errorf("salt password: %w", err)
	}
	return out, nil
}

// NewCredential derives the stored credential from a salted password.
func NewCredential(mechanism string, salt, saltedPassword []byte, iterations int32) (Credential, error) {
	h, ok := scramHashes[mechanism]
	if !ok {
		return Credential{}, fmt.Errorf("%w: mechanism %q", ErrUnsupported, mechanism)
	}
	if err := CheckCredentialShape(mechanism, salt, iterations); err != nil {
		return Credential{}, err
	}
	if len(saltedPassword) != h.size {
		return Credential{}, fmt.Errorf("%w: salted password of %d bytes, %s wants %d", ErrMalformed, len(saltedPassword), mechanism, h.size)
	}
	clientKey := mac(h, saltedPassword, []byte("Client Key"))
	return Credential{Mechanism: mechanism, Salt: append([]byte(nil), salt...), Iterations: iterations,
		StoredKey: digest(h, clientKey), ServerKey: mac(h, saltedPassword, []byte("Server Key"))}, nil
}

// CheckCredentialShape checks what a credential's owner chose: a SCRAM
// mechanism, a salt of sane length and an iteration count Kafka accepts.
func CheckCredentialShape(mechanism string, salt []byte, iterations int32) error {
	if !IsScram(mechanism) {
		return fmt.Errorf("%w: mechanism %q", ErrUnsupported, mechanism)
	}
	if iterations < IterationsMin || iterations > IterationsMax {
		return fmt.Errorf("iterations %d: must be between %d and %d", iterations, IterationsMin, IterationsMax)
	}
	if len(salt) < SaltBytesMin || len(salt) > SaltBytesMax {
		return fmt.Errorf("salt of %d bytes: must be between %d and %d", len(salt), SaltBytesMin, SaltBytesMax)
	}
	return nil
}

// KeySize is the length of a mechanism's StoredKey and ServerKey (0 for an
// unknown mechanism).
func KeySize(mechanism string) int { return scramHashes[mechanism].size }

// Verify reports whether password matches c, in constant time over the keys.
func (c Credential) Verify(password string) bool {
	h, ok := scramHashes[c.Mechanism]
	if !ok {
		return false
	}
	salted, err := SaltPassword(c.Mechanism, password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	stored := digest(h, mac(h, salted, []byte("Client Key")))
	return subtle.ConstantTimeCompare(stored, c.StoredKey) == 1
}

func mac(h scramHash, key, data []byte) []byte {
	m := hmac.New(h.new, key)
	m.Write(data)
	return m.Sum(nil)
}

func digest(h scramHash, data []byte) []byte {
	d := h.new()
	d.Write(data)
	return d.Sum(nil)
}

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	gs2Header string // "n,," or "y,,", with an authzid "n,a=NAME,"
	authzid   string
	user      string
	nonce     string
	bare      string // client-first-message-bare, part of the AuthMessage
	tokenAuth bool   // Kafka's delegation-token extension
}

// parseClientFirst reads RFC 5802's client-first-message. Channel binding
// ("p=") is refused: the listener offers none.
func parseClientFirst(msg string) (clientFirst, error) {
	var cf clientFirst
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return cf, fmt.Errorf("%w: client-first without a GS2 header", ErrMalformed)
	}
	switch {
	case flag == "n" || flag == "y":
	case strings.HasPrefix(flag, "p="):
		return cf, fmt.Errorf("%w: channel binding", ErrUnsupported)
	default:
		return cf, fmt.Errorf("%w: GS2 flag %q", ErrMalformed, flag)
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return cf, fmt.Errorf("%w: client-first without a bare message", ErrMalformed)
	}
	if authz != "" {
		name, found := strings.CutPrefix(authz, "a=")
		if !found {
			return cf, fmt.Errorf("%w: authzid %q", ErrMalformed, authz)
		}
		var err error
		if cf.authzid, err = decodeName(name); err != nil {
			return cf, err
		}
	}
	cf.gs2Header = flag + "," + authz + ","
	cf.bare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return cf, fmt.Errorf("%w: client-first-bare has %d attributes", ErrMalformed, len(attrs))
	}
	if strings.HasPrefix(attrs[0], "m=") {
		return cf, fmt.Errorf("%w: mandatory extension", ErrUnsupported)
	}
	name, found := strings.CutPrefix(attrs[0], "n=")
	if !found {
		return cf, fmt.Errorf("%w: client-first-bare without a user name", ErrMalformed)
	}
	user, err := decodeName(name)
	if err != nil {
		return cf, err
	}
	if user == "" || len(user) > NameBytesMax {
		return cf, fmt.Errorf("%w: user name of %d bytes", ErrMalformed, len(user))
	}
	cf.user = user
	if cf.nonce, found = strings.CutPrefix(attrs[1], "r="); !found || !printableNonce(cf.nonce) {
		return cf, fmt.Errorf("%w: client nonce", ErrMalformed)
	}
	for _, ext := range attrs[2:] {
		if ext == "tokenauth=true" {
			cf.tokenAuth = true
		}
	}
	return cf, nil
}

// decodeName undoes SCRAM's saslname escapes (=2C for ',', =3D for '=').
func decodeName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("%w: bad escape in name %q", ErrMalformed, s)
		}
		i += 2
	}
	return b.String(), nil
}

// printableNonce: RFC 5802's printable characters except ','.
func printableNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	channelBinding []byte // base64-decoded c=
	nonce          string
	proof          []byte
	withoutProof   string // part of the AuthMessage
}

// parseClientFinal reads RFC 5802's client-final-message: c=, r=, optional
// extensions, and p= last.
func parseClientFinal(msg string) (clientFinal, error) {
	var cf clientFinal
	at := strings.LastIndex(msg, ",p=")
	if at < 0 {
		return cf, fmt.Errorf("%w: client-final without a proof", ErrMalformed)
	}
	cf.withoutProof = msg[:at]
	proof, err := base64.StdEncoding.DecodeString(msg[at+3:])
	if err != nil {
		return cf, fmt.Errorf("%w: proof: %v", ErrMalformed, err)
	}
	cf.proof = proof
	attrs := strings.Split(cf.withoutProof, ",")
	if len(attrs) < 2 {
		return cf, fmt.Errorf("%w: client-final has %d attributes", ErrMalformed, len(attrs))
	}
	binding, found := strings.CutPrefix(attrs[0], "c=")
	if !found {
		return cf, fmt.Errorf("%w: client-final without channel binding", ErrMalformed)
	}
	if cf.channelBinding, err = base64.StdEncoding.DecodeString(binding); err != nil {
		return cf, fmt.Errorf("%w: channel binding: %v", ErrMalformed, err)
	}
	if cf.nonce, found = strings.CutPrefix(attrs[1], "r="); !found {
		return cf, fmt.Errorf("%w: client-final without a nonce", ErrMalformed)
	}
	return cf, nil
}

// formatServerFirst is RFC 5802's server-first-message.
func formatServerFirst(nonce string, salt []byte, iterations int32) string {
	return "r=" + nonce + ",s=" + base64.StdEncoding.EncodeToString(salt) + ",i=" + strconv.Itoa(int(iterations))
}
