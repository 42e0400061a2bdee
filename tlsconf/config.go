package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/cairnlog/cairn/env"
)

// ClientAuth is whether a server asks its clients for a certificate.
type ClientAuth string

// The client-auth settings, as --tls-client-auth takes them.
const (
	// ClientAuthNone asks for no certificate.
	ClientAuthNone ClientAuth = "none"
	// ClientAuthRequested asks for one and checks it against the client CA
	// when given; a client without one is served as anonymous.
	ClientAuthRequested ClientAuth = "requested"
	// ClientAuthRequired refuses a handshake without a certificate the
	// client CA signed.
	ClientAuthRequired ClientAuth = "required"
)

// ParseClientAuth reads a --tls-client-auth value.
func ParseClientAuth(s string) (ClientAuth, error) {
	switch a := ClientAuth(s); a {
	case ClientAuthNone, ClientAuthRequested, ClientAuthRequired:
		return a, nil
	}
	return "", fmt.Errorf("tls client auth %q: want none, requested or required", s)
}

func (a ClientAuth) tlsType() tls.ClientAuthType {
	switch a {
	case ClientAuthRequested:
		return tls.VerifyClientCertIfGiven
	case ClientAuthRequired:
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

// Files names a node's certificate, key and client CA files.
type Files struct {
	CertFile string
	KeyFile  string
	// ClientCAFile holds the CAs that sign client certificates (and, between
	// cluster nodes, the other nodes' certificates).
	ClientCAFile string
	// ClientAuth is what a server asks of its clients; empty means
	// required when ClientCAFile is set, none otherwise.
	ClientAuth ClientAuth
}

// Enabled reports whether a certificate is configured.
func (f Files) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" }

// Validate reports the first inconsistency of f.
func (f Files) Validate() error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return errors.New("tls: the certificate file and the key file go together")
	}
	if f.ClientCAFile != "" && !f.Enabled() {
		return errors.New("tls: a client CA file without a certificate and key")
	}
	if f.ClientAuth != "" {
		if _, err := ParseClientAuth(string(f.ClientAuth)); err != nil {
			return err
		}
	}
	if f.clientAuth() != ClientAuthNone && f.ClientCAFile == "" {
		return fmt.Errorf("tls: client auth %s needs a client CA file", f.ClientAuth)
	}
	return nil
}

func (f Files) clientAuth() ClientAuth {
	switch {
	case f.ClientAuth != "":
		return f.ClientAuth
	case f.ClientCAFile != "":
		return ClientAuthRequired
	}
	return ClientAuthNone
}

// Node is a node's TLS material: its reloading keypair and the client CAs.
type Node struct {
	files   Files
	keypair *Keypair
	cas     *x509.CertPool
}

// Load reads f's files. A nil clock is the real one.
func Load(f Files, clock env.Clock, logger *slog.Logger) (*Node, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	k, err := NewKeypair(f.CertFile, f.KeyFile, clock, logger)
	if err != nil {
		return nil, err
	}
	n := &Node{files: f, keypair: k}
	if f.ClientCAFile != "" {
		if n.cas, err = LoadCertPool(f.ClientCAFile); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Keypair is the node's reloading certificate.
func (n *Node) Keypair() *Keypair { return n.keypair }

// Server is the configuration of a listener clients connect to.
func (n *Node) Server() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: n.keypair.GetCertificate,
		ClientCAs:      n.cas,
		ClientAuth:     n.files.clientAuth().tlsType(),
	}
}

// Peer is the configuration of the connections between cluster nodes,
// both ends: each presents its certificate and checks the other's against
// the client CAs (mutual TLS). A dialling side sets ServerName per
// connection.
func (n *Node) Peer() (*tls.Config, error) {
	if n.cas == nil {
		return nil, errors.New("tls: node-to-node TLS needs a CA file (--tls-client-ca-file) to check the other nodes' certificates")
	}
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetCertificate:       n.keypair.GetCertificate,
		GetClientCertificate: n.keypair.GetClientCertificate,
		RootCAs:              n.cas,
		ClientCAs:            n.cas,
		ClientAuth:           tls.RequireAndVerifyClientCert,
	}, nil
}

// ForDial returns cfg ready to dial addr: a copy with ServerName set to
// addr's host, which the peer's certificate must name.
func ForDial(cfg *tls.Config, addr string) *tls.Config {
	c := cfg.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		c.ServerName = host
	}
	return c
}

// LoadCertPool reads the PEM certificates of file into a pool.
func LoadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ClientFiles configures a client's side: the CAs it trusts (empty: the
// system's) and its own certificate, for a server that asks for one.
type ClientFiles struct {
	CAFile   string
	CertFile string
	KeyFile  string
	// Enable turns TLS on with the system's CAs and no certificate when no
	// file is given.
	Enable bool
}

// Enabled reports whether the client connects over TLS.
func (f ClientFiles) Enabled() bool {
	return f.Enable || f.CAFile != "" || f.CertFile != "" || f.KeyFile != ""
}

// Client is the configuration of a client connection, or nil when TLS is
// not enabled.
func Client(f ClientFiles) (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pool, err := LoadCertPool(f.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("tls: the client certificate file and key file go together")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
