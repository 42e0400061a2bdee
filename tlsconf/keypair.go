package tlsconf

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cairnlog/cairn/env"
)

// ReloadCheckInterval is the least time between two looks at the
// certificate and key files: a handshake then costs two stats at most once
// a second, whatever the connection rate.
const ReloadCheckInterval = time.Second

// Keypair is a certificate and its key read from two files, reloaded when
// they change (see the package comment).
type Keypair struct {
	certFile, keyFile string
	clock             env.Clock
	logger            *slog.Logger

	mu        sync.Mutex
	current   *tls.Certificate
	stamp     stamp     // of the files current was read from, or of the last broken pair
	checkedAt time.Time // the last look at the files
}

// stamp is what tells a file changed: its modification time and size.
type stamp struct {
	certModified, keyModified time.Time
	certBytes, keyBytes       int64
}

// NewKeypair reads the pair; an error here stops the start-up, as the node
// has no certificate to serve with. A nil clock is the real one.
func NewKeypair(certFile, keyFile string, clock env.Clock, logger *slog.Logger) (*Keypair, error) {
	if clock == nil {
		clock = env.RealClock()
	}
	if logger == nil {
		logger = slog.Default()
	}
	k := &Keypair{certFile: certFile, keyFile: keyFile, clock: clock, logger: logger}
	st, err := k.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate %s and key %s: %w", certFile, keyFile, err)
	}
	k.current, k.stamp, k.checkedAt = &cert, st, clock.Now()
	return k, nil
}

// Certificate is the pair to hand out now, read again first when the
// files changed since the last look (at most one look per
// ReloadCheckInterval).
func (k *Keypair) Certificate() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.clock.Now()
	if now.Sub(k.checkedAt) < ReloadCheckInterval {
		return k.current
	}
	k.checkedAt = now
	st, err := k.stat()
	if err != nil {
		k.logger.Warn("tls: certificate files unreadable; serving the previous pair", "cert", k.certFile, "key", k.keyFile, "err", err)
		return k.current
	}
	if st == k.stamp {
		return k.current
	}
	// Whatever the outcome, this version of the files is not read again:
	// a broken pair is logged once, and the next change is tried anew.
	k.stamp = st
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		k.logger.Error("tls: new certificate does not load; serving the previous pair", "cert", k.certFile, "key", k.keyFile, "err", err)
		return k.current
	}
	k.current = &cert
	k.logger.Info("tls: certificate reloaded", "cert", k.certFile)
	return k.current
}

// GetCertificate serves as tls.Config.GetCertificate.
func (k *Keypair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// GetClientCertificate serves as tls.Config.GetClientCertificate, for a
// node dialling another.
func (k *Keypair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

func (k *Keypair) stat() (stamp, error) {
	c, err := os.Stat(k.certFile)
	if err != nil {
		return stamp{}, fmt.Errorf("tls: certificate file: %w", err)
	}
	key, err := os.Stat(k.keyFile)
	if err != nil {
		return stamp{}, fmt.Errorf("tls: key file: %w", err)
	}
	return stamp{certModified: c.ModTime(), keyModified: key.ModTime(), certBytes: c.Size(), keyBytes: key.Size()}, nil
}
