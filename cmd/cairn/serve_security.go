package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/tlsconf"
)

// addSecurityFlags adds serve's listener and TLS flags.
func addSecurityFlags(cmd *cobra.Command, cfg *server.Config, advertised *[]string) {
	f := cmd.Flags()
	f.Var(&listenersValue{listeners: &cfg.Listeners}, "listener", "a Kafka listener, NAME=PROTOCOL://HOST:PORT (PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL); repeat for several; replaces --kafka-addr, which, given too, adds a PLAINTEXT listener named PLAINTEXT first. SASL_* listeners require SASL with --sasl-mechanisms")
	f.StringArrayVar(advertised, "advertise-listener", nil, "NAME=HOST:PORT given to clients of listener NAME and registered in the cluster (default: the listener's address as bound); repeatable")
	f.StringVar(&cfg.TLS.CertFile, "tls-cert-file", "", "PEM certificate (chain) of SSL and SASL_SSL listeners, --http-tls and --raft-tls; reloaded when the file changes")
	f.StringVar(&cfg.TLS.KeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file; reloaded with it")
	f.StringVar(&cfg.TLS.ClientCAFile, "tls-client-ca-file", "", "PEM CAs of client certificates (and, with --raft-tls, of the other nodes'); clients must show one unless --tls-client-auth says otherwise")
	f.Var(&clientAuthValue{auth: &cfg.TLS.ClientAuth}, "tls-client-auth", "none, requested or required: whether TLS listeners ask clients for a certificate (default: required with --tls-client-ca-file, none without)")
	f.StringVar(&cfg.PrincipalMappingRules, "tls-principal-mapping-rules", "", "rules from a client certificate's subject to its principal, as Kafka's ssl.principal.mapping.rules: RULE:pattern/replacement/[LU],...,DEFAULT (default DEFAULT: the whole subject, RFC 2253)")
	f.BoolVar(&cfg.HTTPTLS, "http-tls", false, "serve --http-addr (event-store API, /metrics, /healthz) over TLS with --tls-cert-file, asking for client certificates as --tls-client-auth says")
	f.StringVar(&cfg.HTTPAuth, "http-auth", server.HTTPAuthNone, "how the HTTP listener authenticates callers: none (a client certificate's principal, else anonymous), optional (an Authorization header, Basic user:password of a cairn user or Bearer JWT as OAUTHBEARER, is checked when given) or required (event-store calls without credentials or a client certificate get 401)")
	f.BoolVar(&cfg.HTTPAuthMetrics, "http-auth-metrics", false, "with --http-auth optional or required, require authentication of /metrics, /healthz and /debug/pprof too")
	f.BoolVar(&cfg.RaftTLS, "raft-tls", false, "run the connections between cluster nodes over mutual TLS: --tls-cert-file presented, the others' checked against --tls-client-ca-file (every node must set it)")
}

// addKafkaAddrListener makes an explicit --kafka-addr given beside
// --listener the first listener: PLAINTEXT, named PLAINTEXT, advertised at
// --advertise-kafka.
func addKafkaAddrListener(cfg *server.Config) error {
	for _, l := range cfg.Listeners {
		if l.Name == kafka.DefaultListenerName {
			return fmt.Errorf("--kafka-addr adds a listener named %s, and a --listener has that name already", l.Name)
		}
	}
	first := server.Listener{Name: kafka.DefaultListenerName, Protocol: kafka.Plaintext, Addr: cfg.KafkaAddr, AdvertisedAddr: cfg.AdvertisedKafkaAddr}
	cfg.Listeners = append([]server.Listener{first}, cfg.Listeners...)
	return nil
}

// applyAdvertisedListeners sets each --advertise-listener on its listener.
func applyAdvertisedListeners(cfg *server.Config, advertised []string) error {
	for _, a := range advertised {
		name, addr, err := server.ParseAdvertisedListener(a)
		if err != nil {
			return err
		}
		found := false
		for i := range cfg.Listeners {
			if cfg.Listeners[i].Name == name {
				cfg.Listeners[i].AdvertisedAddr, found = addr, true
			}
		}
		if !found {
			return fmt.Errorf("--advertise-listener %s: no --listener of that name", a)
		}
	}
	return nil
}

// listenersValue is --listener, repeatable.
type listenersValue struct {
	listeners *[]server.Listener
	raw       []string
}

func (v *listenersValue) String() string { return strings.Join(v.raw, ",") }

func (v *listenersValue) Set(s string) error {
	// CAIRN_LISTENER may list several, comma-separated.
	for _, item := range strings.Split(s, ",") {
		l, err := server.ParseListener(strings.TrimSpace(item))
		if err != nil {
			return err
		}
		*v.listeners = append(*v.listeners, l)
		v.raw = append(v.raw, item)
	}
	return nil
}

func (v *listenersValue) Type() string { return "listener" }

// clientAuthValue is --tls-client-auth.
type clientAuthValue struct{ auth *tlsconf.ClientAuth }

func (v *clientAuthValue) String() string { return string(*v.auth) }

func (v *clientAuthValue) Set(s string) error {
	a, err := tlsconf.ParseClientAuth(s)
	if err != nil {
		return err
	}
	*v.auth = a
	return nil
}

func (v *clientAuthValue) Type() string { return "mode" }
