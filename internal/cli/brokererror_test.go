package cli

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestBrokerErrorAddsTheBrokersMessage(t *testing.T) {
	err := BrokerError(kerr.InvalidConfig, "retention.ms must be a number")
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("code lost from the chain: %v", err)
	}
	want := kerr.InvalidConfig.Error() + " (retention.ms must be a number)"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestBrokerErrorLeavesPlainCodesAlone(t *testing.T) {
	if err := BrokerError(kerr.TopicAlreadyExists, ""); err != kerr.TopicAlreadyExists {
		t.Errorf("got %v", err)
	}
	if err := BrokerError(kerr.TopicAlreadyExists, "  "); err != kerr.TopicAlreadyExists {
		t.Errorf("blank message changed the error: %v", err)
	}
	if err := BrokerError(nil, "ignored"); err != nil {
		t.Errorf("nil error became %v", err)
	}
	// A message that repeats the description adds nothing.
	if err := BrokerError(kerr.TopicAlreadyExists, "TOPIC_ALREADY_EXISTS"); err != kerr.TopicAlreadyExists {
		t.Errorf("repeated message added: %v", err)
	}
}
