package server

import (
	"testing"

	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/tlsconf"
)

func TestParseListener(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Listener
		bad  bool
	}{
		{in: "EXTERNAL=SSL://0.0.0.0:9093", want: Listener{Name: "EXTERNAL", Protocol: kafka.SSL, Addr: "0.0.0.0:9093"}},
		{in: "local=plaintext://127.0.0.1:9092", want: Listener{Name: "local", Protocol: kafka.Plaintext, Addr: "127.0.0.1:9092"}},
		{in: "SASL_SSL://[::1]:9094", want: Listener{Name: "SASL_SSL", Protocol: kafka.SASLSSL, Addr: "[::1]:9094"}},
		{in: "X=SASL_PLAINTEXT://:9095", want: Listener{Name: "X", Protocol: kafka.SASLPlaintext, Addr: ":9095"}},
		{in: "X=TLS://h:1", bad: true},
		{in: "X=SSL//h:1", bad: true},
		{in: "X=SSL://h", bad: true},
		{in: "bad name=SSL://h:1", bad: true},
		{in: "=SSL://h:1", bad: true},
	} {
		got, err := ParseListener(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseListener(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseListener(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if name, addr, err := ParseAdvertisedListener("EXTERNAL=kafka.example.com:9093"); err != nil || name != "EXTERNAL" || addr != "kafka.example.com:9093" {
		t.Errorf("ParseAdvertisedListener: %q %q %v", name, addr, err)
	}
	for _, bad := range []string{"EXTERNAL", "EXTERNAL=host", "=h:1"} {
		if _, _, err := ParseAdvertisedListener(bad); err == nil {
			t.Errorf("ParseAdvertisedListener(%q) accepted", bad)
		}
	}
}

// TestListenerConfigValidate: what a configuration with listeners and TLS
// must hold together.
func TestListenerConfigValidate(t *testing.T) {
	cert := tlsconf.Files{CertFile: "c.pem", KeyFile: "k.pem"}
	ssl := Listener{Name: "S", Protocol: kafka.SSL, Addr: "127.0.0.1:0"}
	plain := Listener{Name: "P", Protocol: kafka.Plaintext, Addr: "127.0.0.1:0"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"two listeners", func(c *Config) { c.Listeners, c.TLS = []Listener{plain, ssl}, cert }, true},
		{"ssl without a certificate", func(c *Config) { c.Listeners = []Listener{ssl} }, false},
		{"a name twice", func(c *Config) { c.Listeners, c.TLS = []Listener{ssl, ssl}, cert }, false},
		{"http tls without a certificate", func(c *Config) { c.HTTPTLS = true }, false},
		{"raft tls on a single node", func(c *Config) { c.RaftTLS, c.TLS = true, cert }, false},
		{"raft tls without a CA", func(c *Config) {
			c.RaftTLS, c.TLS, c.NodeID, c.Peers = true, cert, 1, map[int32]string{1: "127.0.0.1:1"}
		}, false},
		{"bad mapping rules", func(c *Config) { c.PrincipalMappingRules = "RULE:x" }, false},
		{"client auth without a CA", func(c *Config) { c.TLS, c.TLS.ClientAuth = cert, tlsconf.ClientAuthRequired }, false},
	} {
		cfg := DefaultConfig()
		tc.edit(&cfg)
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
