package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/cairnlog/cairn/tlsconf"
)

// SecurityProtocol is a listener's security protocol, as Kafka names them.
type SecurityProtocol string

// The security protocols a listener may have.
const (
	Plaintext     SecurityProtocol = "PLAINTEXT"
	SSL           SecurityProtocol = "SSL"
	SASLPlaintext SecurityProtocol = "SASL_PLAINTEXT"
	SASLSSL       SecurityProtocol = "SASL_SSL"
)

// ParseSecurityProtocol reads a protocol name (upper case, as Kafka's).
func ParseSecurityProtocol(s string) (SecurityProtocol, error) {
	switch p := SecurityProtocol(s); p {
	case Plaintext, SSL, SASLPlaintext, SASLSSL:
		return p, nil
	}
	return "", fmt.Errorf("security protocol %q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", s)
}

// TLS reports whether connections run over TLS.
func (p SecurityProtocol) TLS() bool { return p == SSL || p == SASLSSL }

// SASL reports whether the protocol authenticates with SASL: a connection
// to such a listener is served once it has (sasl.go).
func (p SecurityProtocol) SASL() bool { return p == SASLPlaintext || p == SASLSSL }

// DefaultListenerName names the one listener of a Config without
// Listeners, as Kafka names a plaintext listener by default;
// DefaultSASLListenerName names it when SASL mechanisms are configured.
const (
	DefaultListenerName     = "PLAINTEXT"
	DefaultSASLListenerName = "SASL_PLAINTEXT"
)

// Listener is one named Kafka listener: its security protocol, the
// address clients are given for it, and its TLS settings.
type Listener struct {
	// Name identifies the listener across the cluster: a client connected
	// to listener NAME is given every broker's NAME address.
	Name     string
	Protocol SecurityProtocol
	// AdvertisedAddr is the host:port given to clients connected here.
	AdvertisedAddr string
	// TLS is the server side's configuration (SSL and SASL_SSL only).
	TLS *tls.Config
	// PrincipalRules name the principal of a client certificate; empty
	// means DEFAULT (the subject's distinguished name).
	PrincipalRules tlsconf.Rules
}

func (l Listener) validate() error {
	if l.Name == "" {
		return errors.New("listener without a name")
	}
	if _, err := ParseSecurityProtocol(string(l.Protocol)); err != nil {
		return fmt.Errorf("listener %s: %w", l.Name, err)
	}
	if l.Protocol.TLS() != (l.TLS != nil) {
		return fmt.Errorf("listener %s: protocol %s with TLS configured %v", l.Name, l.Protocol, l.TLS != nil)
	}
	if _, port, err := net.SplitHostPort(l.AdvertisedAddr); err != nil {
		return fmt.Errorf("listener %s: advertised addr %q: %w", l.Name, l.AdvertisedAddr, err)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("listener %s: advertised addr %q: bad port", l.Name, l.AdvertisedAddr)
	}
	return nil
}

// listener is a Listener as a connection sees it, its advertised address
// split for responses.
type listener struct {
	Listener
	host string
	port int32
}

func newListener(l Listener) *listener {
	host, portText, _ := net.SplitHostPort(l.AdvertisedAddr)
	port, _ := strconv.ParseUint(portText, 10, 16)
	if len(l.PrincipalRules) == 0 {
		l.PrincipalRules = tlsconf.DefaultRules
	}
	return &listener{Listener: l, host: host, port: int32(port)}
}

// tlsHandshakeTimeout bounds a TLS handshake: a client that connects and
// stays silent holds a connection slot no longer than this.
const tlsHandshakeTimeout = 10 * time.Second

// handshake completes a TLS connection's handshake and, when the client
// showed a certificate, sets the connection's principal from its subject.
func (c *conn) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(c.ctx, tlsHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	state := tc.ConnectionState()
	if len(state.PeerCertificates) == 0 {
		return nil
	}
	p, err := tlsconf.CertificatePrincipal(state.PeerCertificates[0], c.listener.PrincipalRules)
	if err != nil {
		return err
	}
	c.principal = p
	c.logger.Debug("tls client authenticated", "listener", c.listener.Name, "principal", c.principal.String())
	return nil
}
