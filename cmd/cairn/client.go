package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// clientFlags are the connection flags shared by every command that talks to
// a cluster.
type clientFlags struct {
	brokers []string
	timeout time.Duration
}

// register adds --brokers and --timeout; timeoutUsage says what the timeout
// bounds in this command.
func (f *clientFlags) register(flags *pflag.FlagSet, timeoutUsage string) {
	flags.StringSliceVar(&f.brokers, "brokers", []string{"127.0.0.1:9092"},
		"bootstrap brokers, host:port, comma-separated or repeated")
	flags.DurationVar(&f.timeout, "timeout", 30*time.Second, timeoutUsage)
}

// newClient returns a client for the configured brokers. The caller closes it.
func (f *clientFlags) newClient(options ...kgo.Opt) (*kgo.Client, error) {
	if len(f.brokers) == 0 {
		return nil, fmt.Errorf("no --brokers given")
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %s: must be positive", f.timeout)
	}
	options = append([]kgo.Opt{kgo.SeedBrokers(f.brokers...)}, options...)
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
