package main

import (
	"strings"
	"testing"
)

// TestProduceToANewTopicCreatesIt proves the first example of `cairn produce
// --help` against a Cairn server: a topic that does not exist yet is created
// by the produce, as it is for kcat.
func TestProduceToANewTopicCreatesIt(t *testing.T) {
	s := startCairn(t)
	result := invocation{
		stdin: strings.NewReader("hello\n"),
		args:  []string{"produce", "greetings", "--brokers", s.KafkaAddr(), "--timeout", "10s"},
	}.run(t)
	if result.err != nil {
		t.Fatalf("produce to a new topic: %v\nstderr: %s", result.err, result.stderr)
	}
	consumed := mustCairn(t, "consume", "greetings", "--from", "beginning", "--until-end", "--brokers", s.KafkaAddr())
	if consumed.stdout != "hello\n" {
		t.Errorf("consumed %q, want the produced line", consumed.stdout)
	}
}

// TestProduceToAnInvalidTopicNameSaysWhy proves that a name the broker
// refuses gets the reason `topic create` gives, not UNKNOWN_TOPIC_OR_PARTITION.
func TestProduceToAnInvalidTopicNameSaysWhy(t *testing.T) {
	s := startCairn(t)
	const name = "bad name"
	created := cairn(t, "topic", "create", name, "--brokers", s.KafkaAddr())
	if created.err == nil {
		t.Fatalf("topic create %q succeeded", name)
	}
	result := invocation{
		stdin: strings.NewReader("hello\n"),
		args:  []string{"produce", name, "--brokers", s.KafkaAddr(), "--timeout", "10s"},
	}.run(t)
	if result.err == nil {
		t.Fatalf("produce to %q succeeded", name)
	}
	got := result.err.Error()
	if strings.Contains(got, "UNKNOWN_TOPIC_OR_PARTITION") || !strings.Contains(got, "INVALID_TOPIC_EXCEPTION") {
		t.Errorf("produce error %q, want INVALID_TOPIC_EXCEPTION", got)
	}
	// The reason topic create gives, after the code: "... has ' '; use ASCII letters ...".
	reason := created.err.Error()[strings.LastIndex(created.err.Error(), "("):]
	if !strings.Contains(got, reason) {
		t.Errorf("produce error %q lacks the reason topic create gives: %q", got, reason)
	}
}
