package kafka

import (
	"errors"
	"fmt"
	"net"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/auth/sasl"
)

// ErrAuthenticationRefused is Authenticate's error for an address over its
// limit of failed authentications: its credentials were not checked.
var ErrAuthenticationRefused = errors.New("too many failed authentications from this address; try again later")

// Authenticate checks a one-step SASL message for mechanism (PLAIN, or
// OAUTHBEARER when the listeners offer it) from remoteAddr as a Kafka
// connection's exchange checks it: against the same users and token keys,
// counted by the same per-address limiter, metric and audit lines
// (via=http). HTTP callers authenticate through it, so that a user is the
// same principal on every surface. The error says nothing a client should
// not hear (an unknown user and a wrong password look the same).
func (s *Server) Authenticate(remoteAddr, mechanism string, message []byte) (auth.Principal, error) {
	addr := remoteAddr
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		addr = host
	}
	logger := s.logger.With("remote", remoteAddr, "via", "http")
	audit := func(msg, outcome string, args ...any) {
		saslAuthentications.WithLabelValues(mechanism, outcome).Inc()
		logger.Info(msg, append([]any{"log", "audit", "outcome", outcome, "mechanism", mechanism}, args...)...)
	}
	if mechanism != sasl.Plain && mechanism != sasl.OAuthBearer {
		return auth.Principal{}, fmt.Errorf("%w: mechanism %q over HTTP", sasl.ErrUnsupported, mechanism)
	}
	if !s.saslAllowed(addr) {
		audit("authentication refused", "refused", "principal", "", "reason", ErrAuthenticationRefused.Error())
		return auth.Principal{}, ErrAuthenticationRefused
	}
	conv, err := s.sasl.server.Start(mechanism)
	if err != nil {
		return auth.Principal{}, err
	}
	_, done, err := conv.Step(message)
	if err == nil && !done {
		err = fmt.Errorf("%w: %s did not complete in one message", sasl.ErrMalformed, mechanism)
	}
	if err != nil {
		s.saslFailed(addr)
		audit("authentication failed", "failure", "principal", principalOf(conv.User()), "reason", err.Error())
		return auth.Principal{}, clientReason(err)
	}
	p := auth.User(conv.User())
	audit("authentication succeeded", "success", "principal", p.String())
	return p, nil
}
