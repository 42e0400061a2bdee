package kafka

// SaslHandshake v0-v1 and SaslAuthenticate v0-v2, on SASL_PLAINTEXT and
// SASL_SSL listeners, offering Config.SASL's mechanisms (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER).
//
// Before a connection authenticates it may send only ApiVersions,
// SaslHandshake and SaslAuthenticate, in frames of at most
// SASLConfig.PreAuthRequestBytesMax; anything else closes it (logged). This
// phase runs on the connection's goroutine before its pipeline starts
// (authenticate), so nothing is read ahead of the exchange. A failed
// authentication is answered SASL_AUTHENTICATION_FAILED and the connection
// closed, as Kafka does; an address whose failures outran the limiter
// (sasl.Limiter) is refused at once without its credentials being checked.
// Every success and failure writes an audit line (log=audit).
//
// KIP-368: with SASLConfig.SessionLifetime set, SaslAuthenticate v1+
// answers session_lifetime_ms, and once it has passed the connection may
// only re-authenticate (SaslHandshake, SaslAuthenticate through the
// pipeline, in place); any other request closes it. A re-authentication
// must name the same user. An OAUTHBEARER session ends when its token
// expires, if that is sooner.
//
// OAUTHBEARER (RFC 7628) takes a JWT signed by a key of the configured
// JWKS (asymmetric algorithms only), from the configured issuer, for the
// configured audience, with an expiry; the principal is its subject. A bad
// token answers SASL_AUTHENTICATION_FAILED at once, without RFC 7628's
// error challenge.
//
// SaslHandshake v0 is served before authentication: the client then sends
// raw SASL tokens (size-prefixed, no request header), answered likewise,
// and a failure closes the connection unanswered. Clients today send v1
// (franz-go, sarama, kafkajs, librdkafka >= 1.0), but librdkafka only
// believes a broker supports SASL when the handshake's versions start at 0.
// A v0 handshake on an authenticated connection answers ILLEGAL_SASL_STATE
// and closes it (re-authentication is v1's).
//
// SCRAM accepts, besides RFC 5802's client-final nonce, the one librdkafka
// before 2.6.1 sends (its own nonce again in front, librdkafka#4895), as
// Kafka did until 4.0: kcat and most librdkafka builds in use send it.
//
// Deviations: GSSAPI is not offered. On a PLAINTEXT or SSL listener,
// SaslHandshake and SaslAuthenticate answer ILLEGAL_SASL_STATE.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/auth/sasl"
)

func init() {
	register(kmsg.SASLHandshake.Int16(), 0, 1, handleSaslHandshake)
	register(kmsg.SASLAuthenticate.Int16(), 0, 2, handleSaslAuthenticate)
}

// SASLConfig is what the SASL_* listeners offer and how they bound what a
// client can do before it authenticates.
type SASLConfig struct {
	// Mechanisms the SASL_* listeners offer (sasl.Plain, sasl.ScramSHA256,
	// sasl.ScramSHA512, sasl.OAuthBearer); a SASL_* listener needs at
	// least one. Set on a Config without Listeners, they make its one
	// listener SASL_PLAINTEXT.
	Mechanisms []string
	// SessionLifetime is the time an authentication holds (Kafka's
	// connections.max.reauth.ms); zero: for the connection's life.
	SessionLifetime time.Duration
	// PreAuthRequestBytesMax bounds a request frame before authentication
	// (default 512 KiB).
	PreAuthRequestBytesMax int32
	// Limiter bounds failed authentications per source address.
	Limiter sasl.LimiterConfig
	// OAuthBearer checks the tokens of OAUTHBEARER, when Mechanisms names it.
	OAuthBearer sasl.OAuthConfig
}

// DefaultSASLConfig is SASL off, with the limits it would use.
func DefaultSASLConfig() SASLConfig {
	return SASLConfig{PreAuthRequestBytesMax: 512 << 10, Limiter: sasl.DefaultLimiterConfig()}
}

// Enabled reports whether mechanisms are configured.
func (c SASLConfig) Enabled() bool { return len(c.Mechanisms) > 0 }

// CheckMechanisms refuses a mechanism this server does not offer, or one
// named twice.
func CheckMechanisms(mechanisms []string) error {
	for i, m := range mechanisms {
		if m != sasl.Plain && !sasl.IsScram(m) && m != sasl.OAuthBearer {
			return fmt.Errorf("sasl mechanism %q: this server offers %s, %s, %s and %s", m, sasl.Plain, sasl.ScramSHA256, sasl.ScramSHA512, sasl.OAuthBearer)
		}
		if slices.Contains(mechanisms[:i], m) {
			return fmt.Errorf("sasl mechanism %q named twice", m)
		}
	}
	return nil
}

// Validate reports the first problem in c.
func (c SASLConfig) Validate() error {
	if err := CheckMechanisms(c.Mechanisms); err != nil {
		return err
	}
	if !c.Enabled() {
		return nil
	}
	if slices.Contains(c.Mechanisms, sasl.OAuthBearer) {
		if err := c.OAuthBearer.Check(); err != nil {
			return err
		}
	}
	switch {
	case c.SessionLifetime < 0:
		return errors.New("sasl session lifetime must not be negative")
	case c.PreAuthRequestBytesMax < 1024:
		return errors.New("pre-authentication request bytes max must be at least 1024")
	case c.Limiter.Burst < 1 || c.Limiter.Refill <= 0 || c.Limiter.AddressesMax < 1:
		return errors.New("sasl limiter: burst, refill and addresses max must be positive")
	}
	return nil
}

// ParseMechanisms reads a comma list of mechanism names ("" is none).
func ParseMechanisms(list string) []string {
	var out []string
	for _, m := range strings.Split(list, ",") {
		if m = strings.ToUpper(strings.TrimSpace(m)); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// saslState is a server's shared SASL machinery.
type saslState struct {
	server  *sasl.Server
	mu      sync.Mutex
	limiter *sasl.Limiter
}

// session is a connection's SASL state, touched only by the goroutine
// running its handlers (authenticate, then the handle loop).
type session struct {
	mechanism     string // chosen by the last SaslHandshake
	raw           bool   // that handshake was v0: raw tokens follow
	conversation  *sasl.Conversation
	authenticated bool
	expiry        time.Time // zero: never
}

// audit writes an audit line: the connection's remote address, and the
// outcome, mechanism, principal and reason the caller gives.
func (c *conn) audit(msg, outcome, mechanism string, args ...any) {
	saslAuthentications.WithLabelValues(mechanism, outcome).Inc()
	c.logger.Info(msg, append([]any{"log", "audit", "outcome", outcome, "mechanism", mechanism}, args...)...)
}

func (s *Server) now() time.Time { return s.cluster.Env().Clock.Now() }

// sourceAddr is the address failures are counted against: the peer's IP,
// not its port, which a client chooses anew for each connection.
func sourceAddr(nc net.Conn) string {
	addr := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// preAuthRequestsMax bounds the requests a connection may send before it
// authenticates: a SCRAM login takes four (ApiVersions, SaslHandshake, two
// SaslAuthenticate), so a client past this is not trying to log in.
const preAuthRequestsMax = 64

// errPreAuth ends a connection that broke the pre-authentication rules.
var errPreAuth = errors.New("before authentication")

// authenticate runs the connection's pre-authentication phase on r: it
// returns nil once the client authenticated, or why the connection must
// close (the failed exchange answered first).
func (c *conn) authenticate(r *bufio.Reader) error {
	w := bufio.NewWriter(c.nc)
	for requests := 1; ; requests++ {
		if requests > preAuthRequestsMax {
			return fmt.Errorf("%w: %d requests without authenticating", errPreAuth, preAuthRequestsMax)
		}
		if err := c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
			return err
		}
		frame, err := readFrame(r, c.s.cfg.SASL.PreAuthRequestBytesMax, nil)
		if err != nil {
			return fmt.Errorf("%w: %w", errPreAuth, err)
		}
		h, req, err := decodeRequest(frame)
		var rep reply
		switch {
		case errors.Is(err, errUnsupportedApiVersions):
			rep = reply{resp: unsupportedApiVersions()}
		case err != nil:
			return fmt.Errorf("%w: %w", errPreAuth, err)
		case h.key == kmsg.ApiVersions.Int16() || h.key == kmsg.SASLHandshake.Int16() || h.key == kmsg.SASLAuthenticate.Int16():
			requestsTotal.WithLabelValues(kmsg.NameForKey(h.key)).Inc()
			c.clientID = h.clientID
			rep = apis[h.key].handle(c.s, c, req)
		default:
			return fmt.Errorf("%w: %s request (client %q); only ApiVersions, SaslHandshake and SaslAuthenticate are allowed",
				errPreAuth, kmsg.NameForKey(h.key), h.clientID)
		}
		if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
			return err
		}
		if _, err := w.Write(appendResponse(nil, h, rep.resp)); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if rep.closeAfter {
			return fmt.Errorf("%w: authentication failed", errPreAuth)
		}
		if c.sasl.raw && c.sasl.mechanism != "" {
			if err := c.rawExchange(r, w); err != nil {
				return err
			}
		}
		if c.sasl.authenticated {
			return nil
		}
	}
}

// requiresSASL reports whether the connection must authenticate with SASL
// before it is served: the one place that decides it, by the security
// protocol of its listener (Config.Validate makes sure a SASL_* listener
// has mechanisms to offer).
func (c *conn) requiresSASL() bool { return c.listener.Protocol.SASL() }

// checkSession closes (by its error) a connection whose session has
// expired and that sends anything but a re-authentication (KIP-368).
func (c *conn) checkSession(key int16) error {
	if key == kmsg.SASLHandshake.Int16() || key == kmsg.SASLAuthenticate.Int16() {
		return nil
	}
	if !c.sasl.expiry.IsZero() && !c.s.now().Before(c.sasl.expiry) {
		return fmt.Errorf("SASL session of %s expired at %s: %s request without re-authenticating",
			c.principal, c.sasl.expiry.UTC().Format(time.RFC3339Nano), kmsg.NameForKey(key))
	}
	return nil
}

func handleSaslHandshake(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = slices.Clone(s.cfg.SASL.Mechanisms)
	if !c.requiresSASL() {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return reply{resp: resp}
	}
	if req.Version == 0 && c.sasl.authenticated {
		// Raw tokens cannot follow in the pipeline; KIP-368 re-authenticates with v1.
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return reply{resp: resp, closeAfter: true}
	}
	mechanism := strings.ToUpper(req.Mechanism)
	c.sasl.mechanism, c.sasl.conversation, c.sasl.raw = "", nil, false
	if !slices.Contains(s.cfg.SASL.Mechanisms, mechanism) {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return reply{resp: resp}
	}
	c.sasl.mechanism, c.sasl.raw = mechanism, req.Version == 0
	return reply{resp: resp}
}

// saslFailure is a failed step: the code and message the client hears.
type saslFailure struct {
	code    *kerr.Error
	message string
}

// saslStep runs one client token through the exchange the last handshake
// chose: the server's token and whether the client is now authenticated,
// or the failure (audited and counted against the address).
func (c *conn) saslStep(token []byte) ([]byte, bool, *saslFailure) {
	s := c.s
	mechanism := c.sasl.mechanism
	if !c.requiresSASL() || mechanism == "" {
		return nil, false, &saslFailure{kerr.IllegalSaslState, "SaslAuthenticate without a successful SaslHandshake first"}
	}
	addr := sourceAddr(c.nc)
	if c.sasl.conversation == nil {
		if !s.saslAllowed(addr) {
			c.audit("authentication refused", "refused", mechanism, "principal", "",
				"reason", "too many failed authentications from this address")
			return nil, false, &saslFailure{kerr.SaslAuthenticationFailed, "too many failed authentications from this address; try again later"}
		}
		conv, err := s.sasl.server.Start(mechanism)
		if err != nil {
			return nil, false, &saslFailure{kerr.UnsupportedSaslMechanism, err.Error()}
		}
		c.sasl.conversation = conv
	}
	conv := c.sasl.conversation
	out, done, err := conv.Step(token)
	if err == nil && done && c.sasl.authenticated && auth.User(conv.User()) != c.principal {
		err = fmt.Errorf("%w: re-authentication as %s on a connection of %s", sasl.ErrAuthentication, auth.User(conv.User()), c.principal)
	}
	if err != nil {
		s.saslFailed(addr)
		c.audit("authentication failed", "failure", mechanism,
			"principal", principalOf(conv.User()), "reason", err.Error())
		return nil, false, &saslFailure{kerr.SaslAuthenticationFailed, fmt.Sprintf("authentication with %s failed: %v", mechanism, clientReason(err))}
	}
	if !done {
		return out, false, nil
	}
	c.principal = auth.User(conv.User())
	c.sasl = session{authenticated: true}
	if lifetime := s.cfg.SASL.SessionLifetime; lifetime > 0 {
		c.sasl.expiry = s.now().Add(lifetime)
	}
	// A token's session ends with the token (KIP-368).
	if tokenExpiry := conv.Expiry(); !tokenExpiry.IsZero() && (c.sasl.expiry.IsZero() || tokenExpiry.Before(c.sasl.expiry)) {
		c.sasl.expiry = tokenExpiry
	}
	c.audit("authentication succeeded", "success", mechanism, "principal", c.principal.String())
	return out, true, nil
}

func handleSaslAuthenticate(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if c.sasl.raw {
		c.sasl.mechanism = "" // a v0 handshake promised raw tokens, not this
	}
	out, done, failure := c.saslStep(req.SASLAuthBytes)
	if failure != nil {
		resp.ErrorCode, resp.ErrorMessage = failure.code.Code, &failure.message
		c.sasl.mechanism, c.sasl.conversation = "", nil
		return reply{resp: resp, closeAfter: true}
	}
	resp.SASLAuthBytes = out
	if done && !c.sasl.expiry.IsZero() {
		resp.SessionLifetimeMillis = max(1, c.sasl.expiry.Sub(s.now()).Milliseconds())
	}
	return reply{resp: resp}
}

// rawExchange runs the SASL tokens that follow a v0 SaslHandshake: each a
// size-prefixed frame with no request header, each answered likewise (an
// empty frame when the mechanism has nothing to say). A failure closes the
// connection without an answer, as Kafka does.
func (c *conn) rawExchange(r *bufio.Reader, w *bufio.Writer) error {
	for !c.sasl.authenticated {
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return fmt.Errorf("%w: raw SASL token: %w", errPreAuth, err)
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 0 || n > c.s.cfg.SASL.PreAuthRequestBytesMax {
			return fmt.Errorf("%w: raw SASL token of %d bytes, at most %d", errPreAuth, n, c.s.cfg.SASL.PreAuthRequestBytesMax)
		}
		// Read as the bytes arrive: a claimed size costs nothing until sent.
		token, err := io.ReadAll(io.LimitReader(r, int64(n)))
		if err == nil && len(token) < int(n) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("%w: raw SASL token: %w", errPreAuth, err)
		}
		out, _, failure := c.saslStep(token)
		if failure != nil {
			return fmt.Errorf("%w: %s", errPreAuth, failure.message)
		}
		if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
			return err
		}
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(out)))
		if _, err := w.Write(append(frame, out...)); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// clientReason is what a failed client hears: the same words for a wrong
// password and an unknown user, more for a malformed exchange.
func clientReason(err error) error {
	if errors.Is(err, sasl.ErrAuthentication) {
		return sasl.ErrAuthentication
	}
	return err
}

func principalOf(user string) string {
	if user == "" {
		return ""
	}
	return auth.User(user).String()
}

func (s *Server) saslAllowed(addr string) bool {
	s.sasl.mu.Lock()
	defer s.sasl.mu.Unlock()
	return s.sasl.limiter.Allowed(addr, s.now())
}

func (s *Server) saslFailed(addr string) {
	s.sasl.mu.Lock()
	defer s.sasl.mu.Unlock()
	s.sasl.limiter.Failed(addr, s.now())
}
