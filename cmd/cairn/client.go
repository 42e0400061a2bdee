package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cairnlog/cairn/tlsconf"
)

// clientFlags are the connection flags shared by every command that talks to
// a cluster.
type clientFlags struct {
	brokers []string
	timeout time.Duration
	tls     tlsconf.ClientFiles
	// SASL, for a listener that requires it (serve --sasl-mechanisms).
	saslMechanism string
	saslUser      string
	saslPassword  string
	saslToken     string
}

// register adds --brokers and --timeout; timeoutUsage says what the timeout
// bounds in this command.
func (f *clientFlags) register(flags *pflag.FlagSet, timeoutUsage string) {
	flags.StringSliceVar(&f.brokers, "brokers", []string{"127.0.0.1:9092"},
		"bootstrap brokers, host:port, comma-separated or repeated")
	flags.DurationVar(&f.timeout, "timeout", 30*time.Second, timeoutUsage)
	flags.StringVar(&f.saslMechanism, "sasl-mechanism", "", "authenticate with SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with --sasl-user and --sasl-password), or OAUTHBEARER (with --sasl-token)")
	flags.StringVar(&f.saslUser, "sasl-user", "", "SASL user name")
	flags.StringVar(&f.saslPassword, "sasl-password", "", "SASL password (better in CAIRN_SASL_PASSWORD than on the command line)")
	flags.StringVar(&f.saslToken, "sasl-token", "", "OAUTHBEARER token, a JWT (better in CAIRN_SASL_TOKEN than on the command line)")
	registerTLSFlags(flags, &f.tls, "the brokers (an SSL or SASL_SSL listener)")
}

// saslOption is the client option authenticating as --sasl-user, or none.
func (f *clientFlags) saslOption() ([]kgo.Opt, error) {
	if f.saslMechanism == "" {
		return nil, nil
	}
	if strings.EqualFold(f.saslMechanism, "OAUTHBEARER") {
		if f.saslToken == "" {
			return nil, fmt.Errorf("--sasl-mechanism OAUTHBEARER needs --sasl-token")
		}
		return []kgo.Opt{kgo.SASL(oauth.Auth{Token: f.saslToken}.AsMechanism())}, nil
	}
	if f.saslUser == "" || f.saslPassword == "" {
		return nil, fmt.Errorf("--sasl-mechanism %s needs --sasl-user and --sasl-password", f.saslMechanism)
	}
	var mechanism kgosasl.Mechanism
	switch strings.ToUpper(f.saslMechanism) {
	case "PLAIN":
		mechanism = plain.Auth{User: f.saslUser, Pass: f.saslPassword}.AsMechanism()
	case "SCRAM-SHA-256":
		mechanism = scram.Auth{User: f.saslUser, Pass: f.saslPassword}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		mechanism = scram.Auth{User: f.saslUser, Pass: f.saslPassword}.AsSha512Mechanism()
	default:
		return nil, fmt.Errorf("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", f.saslMechanism)
	}
	return []kgo.Opt{kgo.SASL(mechanism)}, nil
}

// registerTLSFlags adds the client side's TLS flags; what names the
// server they apply to.
func registerTLSFlags(flags *pflag.FlagSet, f *tlsconf.ClientFiles, what string) {
	flags.BoolVar(&f.Enable, "tls", false, "connect to "+what+" over TLS (implied by the other --tls-* flags), checking its certificate against the system's CAs or --tls-ca-file")
	flags.StringVar(&f.CAFile, "tls-ca-file", "", "PEM CAs that signed the server's certificate")
	flags.StringVar(&f.CertFile, "tls-cert-file", "", "PEM client certificate, for a server that asks for one (mTLS)")
	flags.StringVar(&f.KeyFile, "tls-key-file", "", "PEM key of --tls-cert-file")
}

// newClient returns a client for the configured brokers. The caller closes it.
func (f *clientFlags) newClient(options ...kgo.Opt) (*kgo.Client, error) {
	if len(f.brokers) == 0 {
		return nil, fmt.Errorf("no --brokers given")
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %s: must be positive", f.timeout)
	}
	auth, err := f.saslOption()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := tlsconf.Client(f.tls)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		options = append([]kgo.Opt{kgo.DialTLSConfig(tlsCfg)}, options...)
	}
	options = append(append([]kgo.Opt{kgo.SeedBrokers(f.brokers...)}, auth...), options...)
	client, err := kgo.NewClient(options...)
	if err != nil {
		return nil, fmt.Errorf("create client for %v: %w", f.brokers, err)
	}
	return client, nil
}

// newAdmin returns an admin client for the configured brokers and the kgo
// client under it, which the caller closes.
func (f *clientFlags) newAdmin() (*kadm.Client, *kgo.Client, error) {
	client, err := f.newClient()
	if err != nil {
		return nil, nil, err
	}
	admin := kadm.NewClient(client)
	// Broker-side timeout of create and delete; the command's context bounds
	// the whole call.
	admin.SetTimeoutMillis(int32(min(f.timeout.Milliseconds(), 1<<31-1)))
	return admin, client, nil
}
