package server

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/tlsconf"
)

// Listener is one Kafka listener of the node.
type Listener struct {
	// Name identifies the listener in the cluster: clients connected to it
	// are given every broker's address for the listener of this name.
	Name     string
	Protocol kafka.SecurityProtocol
	// Addr is where it binds, HOST:PORT.
	Addr string
	// AdvertisedAddr is the HOST:PORT clients are given; empty means Addr
	// as bound.
	AdvertisedAddr string
}

var listenerName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// ParseListener reads a --listener value, NAME=PROTOCOL://HOST:PORT, or
// PROTOCOL://HOST:PORT for a listener named after its protocol.
func ParseListener(s string) (Listener, error) {
	name, spec, named := strings.Cut(s, "=")
	if !named {
		spec = s
	}
	proto, addr, ok := strings.Cut(spec, "://")
	if !ok {
		return Listener{}, fmt.Errorf("listener %q: want NAME=PROTOCOL://HOST:PORT", s)
	}
	p, err := kafka.ParseSecurityProtocol(strings.ToUpper(proto))
	if err != nil {
		return Listener{}, fmt.Errorf("listener %q: %w", s, err)
	}
	if !named {
		name = string(p)
	}
	if !listenerName.MatchString(name) {
		return Listener{}, fmt.Errorf("listener %q: name %q: letters, digits and _ only, at most 64", s, name)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return Listener{}, fmt.Errorf("listener %q: address %q is not HOST:PORT", s, addr)
	}
	return Listener{Name: name, Protocol: p, Addr: addr}, nil
}

// ParseAdvertisedListener reads an --advertise-listener value,
// NAME=HOST:PORT.
func ParseAdvertisedListener(s string) (name, addr string, err error) {
	name, addr, ok := strings.Cut(s, "=")
	if !ok || !listenerName.MatchString(name) {
		return "", "", fmt.Errorf("advertised listener %q: want NAME=HOST:PORT", s)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("advertised listener %q: address %q is not HOST:PORT", s, addr)
	}
	return name, addr, nil
}

// kafkaListeners are the configured listeners, or the one listener of
// KafkaAddr: SASL_PLAINTEXT (named so) when SASL mechanisms are given, so
// that --sasl-mechanisms alone turns SASL on, else PLAINTEXT.
func (c Config) kafkaListeners() []Listener {
	if len(c.Listeners) > 0 {
		return c.Listeners
	}
	if len(c.SASLMechanisms) > 0 {
		return []Listener{{Name: kafka.DefaultSASLListenerName, Protocol: kafka.SASLPlaintext, Addr: c.KafkaAddr, AdvertisedAddr: c.AdvertisedKafkaAddr}}
	}
	return []Listener{{Name: kafka.DefaultListenerName, Protocol: kafka.Plaintext, Addr: c.KafkaAddr, AdvertisedAddr: c.AdvertisedKafkaAddr}}
}

// validateListeners checks the listeners and the TLS settings they need.
func (c Config) validateListeners() error {
	names := map[string]bool{}
	for _, l := range c.Listeners {
		if names[l.Name] {
			return fmt.Errorf("listener %s: named twice", l.Name)
		}
		names[l.Name] = true
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			return fmt.Errorf("listener %s address %q: %w", l.Name, l.Addr, err)
		}
		if l.AdvertisedAddr != "" {
			if _, _, err := net.SplitHostPort(l.AdvertisedAddr); err != nil {
				return fmt.Errorf("listener %s advertised address %q: %w", l.Name, l.AdvertisedAddr, err)
			}
		}
		if l.Protocol.TLS() && !c.TLS.Enabled() {
			return fmt.Errorf("listener %s is %s: give --tls-cert-file and --tls-key-file", l.Name, l.Protocol)
		}
		if l.Protocol.SASL() && len(c.SASLMechanisms) == 0 {
			return fmt.Errorf("listener %s is %s: give --sasl-mechanisms", l.Name, l.Protocol)
		}
	}
	if len(c.Listeners) > 0 && len(c.SASLMechanisms) > 0 && !slices.ContainsFunc(c.Listeners, func(l Listener) bool { return l.Protocol.SASL() }) {
		return fmt.Errorf("--sasl-mechanisms given but no --listener is SASL_PLAINTEXT or SASL_SSL")
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if c.HTTPTLS && !c.TLS.Enabled() {
		return fmt.Errorf("http over TLS: give --tls-cert-file and --tls-key-file")
	}
	if c.RaftTLS && (!c.TLS.Enabled() || c.TLS.ClientCAFile == "") {
		return fmt.Errorf("node-to-node TLS: give --tls-cert-file, --tls-key-file and --tls-client-ca-file (the CA of the other nodes' certificates)")
	}
	return nil
}

// withPrincipal puts the principal of a client certificate, mapped by the
// principal mapping rules, in each request's context (auth.FromContext).
// A certificate the rules name no principal for is refused.
func (s *Server) withPrincipal(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			p, err := tlsconf.CertificatePrincipal(r.TLS.PeerCertificates[0], s.rules)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		}
		h.ServeHTTP(w, r)
	})
}
