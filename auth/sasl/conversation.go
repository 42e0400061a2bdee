package sasl

import (
	"crypto/hmac"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"
)

// Credentials finds a user's stored SCRAM credential for a mechanism.
type Credentials interface {
	ScramCredential(user, mechanism string) (Credential, bool)
}

// Server starts conversations over one credential source.
type Server struct {
	credentials Credentials
	rand        io.Reader
	// secret keys the made-up credentials of unknown users, so that their
	// salts are stable for a name but not computable by a client.
	secret []byte
	// oauth, when set, checks OAUTHBEARER tokens at the time now gives.
	oauth *OAuthConfig
	now   func() time.Time
}

// EnableOAuthBearer lets Start begin OAUTHBEARER exchanges, checking tokens
// against cfg at the time now gives.
func (s *Server) EnableOAuthBearer(cfg OAuthConfig, now func() time.Time) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	s.oauth, s.now = &cfg, now
	return nil
}

// NewServer returns a Server drawing nonces (and its secret) from rand.
func NewServer(credentials Credentials, rand io.Reader) (*Server, error) {
	secret := make([]byte, 32)
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, fmt.Errorf("sasl: draw a secret: %w", err)
	}
	return &Server{credentials: credentials, rand: rand, secret: secret}, nil
}

// Conversation is one authentication exchange of one mechanism.
type Conversation struct {
	s         *Server
	mechanism string
	step      int
	user      string
	// SCRAM state between the two client messages.
	first       clientFirst
	serverFirst string
	nonce       string
	credential  Credential
	known       bool
	// expiry is when an OAUTHBEARER token expires (zero for the others).
	expiry time.Time
}

// Start begins an exchange of mechanism (PLAIN or a SCRAM mechanism).
func (s *Server) Start(mechanism string) (*Conversation, error) {
	if mechanism != Plain && !IsScram(mechanism) && (mechanism != OAuthBearer || s.oauth == nil) {
		return nil, fmt.Errorf("%w: mechanism %q", ErrUnsupported, mechanism)
	}
	return &Conversation{s: s, mechanism: mechanism}, nil
}

// Mechanism is the conversation's mechanism.
func (c *Conversation) Mechanism() string { return c.mechanism }

// Expiry is when the credential the client authenticated with stops being
// valid: an OAUTHBEARER token's expiry; zero for the others.
func (c *Conversation) Expiry() time.Time { return c.expiry }

// User is the name the client gave, once it gave one ("" before): the
// audit log names it for failures too.
func (c *Conversation) User() string { return c.user }

// Step takes the client's next token and returns the server's answer and
// whether the exchange succeeded with it. An error ends the exchange as
// failed; the user, when known, is then User().
func (c *Conversation) Step(token []byte) (reply []byte, done bool, err error) {
	c.step++
	switch {
	case c.mechanism == Plain && c.step == 1:
		return nil, true, c.plain(token)
	case c.mechanism == OAuthBearer && c.step == 1:
		return nil, true, c.oauthBearer(token)
	case IsScram(c.mechanism) && c.step == 1:
		reply, err := c.scramFirst(string(token))
		return reply, false, err
	case IsScram(c.mechanism) && c.step == 2:
		reply, err := c.scramFinal(string(token))
		return reply, err == nil, err
	}
	return nil, false, fmt.Errorf("%w: token after the end of the %s exchange", ErrMalformed, c.mechanism)
}

// ParsePlain reads RFC 4616's message: authzid NUL authcid NUL passwd.
func ParsePlain(token []byte) (authzid, user, password string, err error) {
	parts := strings.SplitN(string(token), "\x00", 3)
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("%w: PLAIN message has %d fields, want 3", ErrMalformed, len(parts))
	}
	authzid, user, password = parts[0], parts[1], parts[2]
	if user == "" || len(user) > NameBytesMax || password == "" || strings.Contains(password, "\x00") {
		return "", "", "", fmt.Errorf("%w: PLAIN user or password empty or too long", ErrMalformed)
	}
	return authzid, user, password, nil
}

func (c *Conversation) plain(token []byte) error {
	authzid, user, password, err := ParsePlain(token)
	if err != nil {
		return err
	}
	c.user = user
	if authzid != "" && authzid != user {
		return fmt.Errorf("%w: authorization id %q differs from the user", ErrAuthentication, authzid)
	}
	for _, mechanism := range []string{ScramSHA512, ScramSHA256} {
		if cred, ok := c.s.credentials.ScramCredential(user, mechanism); ok {
			if cred.Verify(password) {
				return nil
			}
			return ErrAuthentication
		}
	}
	return ErrAuthentication
}

func (c *Conversation) oauthBearer(message []byte) error {
	authzid, token, err := ParseOAuthBearer(message)
	if err != nil {
		return err
	}
	subject, expiry, err := c.s.oauth.ValidateToken(token, c.s.now())
	if err != nil {
		return err
	}
	c.user, c.expiry = subject, expiry
	if authzid != "" && authzid != subject {
		return fmt.Errorf("%w: authorization id %q differs from the token's subject", ErrAuthentication, authzid)
	}
	return nil
}

func (c *Conversation) scramFirst(msg string) ([]byte, error) {
	first, err := parseClientFirst(msg)
	if err != nil {
		return nil, err
	}
	c.first, c.user = first, first.user
	if first.tokenAuth {
		return nil, fmt.Errorf("%w: delegation tokens", ErrUnsupported)
	}
	if first.authzid != "" && first.authzid != first.user {
		return nil, fmt.Errorf("%w: authorization id %q differs from the user", ErrAuthentication, first.authzid)
	}
	c.credential, c.known = c.s.credentials.ScramCredential(first.user, c.mechanism)
	if !c.known {
		c.credential = c.s.madeUp(c.mechanism, first.user)
	}
	var ours [18]byte
	if _, err := io.ReadFull(c.s.rand, ours[:]); err != nil {
		return nil, fmt.Errorf("sasl: draw a nonce: %w", err)
	}
	c.nonce = first.nonce + base64.RawURLEncoding.EncodeToString(ours[:])
	c.serverFirst = formatServerFirst(c.nonce, c.credential.Salt, c.credential.Iterations)
	return []byte(c.serverFirst), nil
}

func (c *Conversation) scramFinal(msg string) ([]byte, error) {
	final, err := parseClientFinal(msg)
	if err != nil {
		return nil, err
	}
	if string(final.channelBinding) != c.first.gs2Header {
		return nil, fmt.Errorf("%w: channel binding does not repeat the GS2 header", ErrMalformed)
	}
	// librdkafka before 2.6.1 sends its own nonce once more in front of
	// the whole nonce (librdkafka#4895); Kafka accepted that until 4.0. The
	// server's part is still repeated, so the exchange stays fresh.
	if final.nonce != c.nonce && final.nonce != c.first.nonce+c.nonce {
		return nil, fmt.Errorf("%w: client-final nonce is not the server's", ErrMalformed)
	}
	h := scramHashes[c.mechanism]
	if len(final.proof) != h.size {
		return nil, ErrAuthentication
	}
	authMessage := []byte(c.first.bare + "," + c.serverFirst + "," + final.withoutProof)
	signature := mac(h, c.credential.StoredKey, authMessage)
	clientKey := make([]byte, h.size)
	subtle.XORBytes(clientKey, final.proof, signature)
	if !c.known || !hmac.Equal(digest(h, clientKey), c.credential.StoredKey) {
		return nil, ErrAuthentication
	}
	serverSignature := mac(h, c.credential.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSignature)), nil
}

// madeUp is the credential an unknown user's exchange runs against: a salt
// stable for the name (asking twice gives the same), keys no password
// matches.
func (s *Server) madeUp(mechanism, user string) Credential {
	h := scramHashes[mechanism]
	salt := mac(h, s.secret, []byte(mechanism+"\x00"+user))[:16]
	return Credential{Mechanism: mechanism, Salt: salt, Iterations: IterationsDefault,
		StoredKey: mac(h, s.secret, []byte("stored\x00"+user)), ServerKey: mac(h, s.secret, []byte("server\x00"+user))}
}
