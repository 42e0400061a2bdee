package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// cairnOffline runs a cairn command that talks to no server.
func cairnOffline(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliWaitMax)
	defer cancel()
	cmd := exec.CommandContext(ctx, cairnBinary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cairn %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// kcatSASL is kcat's configuration for SASL_PLAINTEXT with SCRAM-SHA-512.
func kcatSASL(user, password string) []string {
	return []string{"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=" + user, "-X", "sasl.password=" + password}
}

// TestSaslFirstUserOfflineThenClients: the first user is created with
// `cairn user create --data-dir` before the first start; `serve
// --sasl-mechanisms` then lets kcat (librdkafka, SASL_PLAINTEXT +
// SCRAM-SHA-512) produce and consume as that user, refuses a wrong
// password, lets the CLI create a second user through the running server,
// which sarama (SCRAM-SHA-512) uses; every user survives a restart; the
// CLI then changes the second user's password and deletes it.
func TestSaslFirstUserOfflineThenClients(t *testing.T) {
	kcatPath := requireTool(t, "kcat")
	dir := t.TempDir()
	out := cairnOffline(t, "user", "create", "admin", "--password", "admin-secret", "--mechanism", "SCRAM-SHA-512", "--data-dir", dir)
	if !strings.Contains(out, "staged user admin") {
		t.Fatalf("user create --data-dir said %q", out)
	}
	server := startCairn(t, dir, "--sasl-mechanisms", "SCRAM-SHA-512,PLAIN")

	produce := append(kcatSASL("admin", "admin-secret"), "-t", "secured", "-P", "-k", "k1")
	kcat(t, kcatPath, server.kafkaAddr, "hello\n", produce...)
	consume := func(user, password string) string {
		args := append(kcatSASL(user, password), "-t", "secured", "-C", "-e", "-o", "beginning", "-f", `%k=%s\n`)
		return kcat(t, kcatPath, server.kafkaAddr, "", args...)
	}
	if got := consume("admin", "admin-secret"); got != "k1=hello\n" {
		t.Fatalf("kcat consumed %q", got)
	}
	wrong := exec.Command(kcatPath, append([]string{"-b", server.kafkaAddr, "-L", "-m", "5"}, kcatSASL("admin", "nope")...)...)
	var stderr bytes.Buffer
	wrong.Stderr = &stderr
	var exitErr *exec.ExitError
	if err := wrong.Run(); !errors.As(err, &exitErr) {
		t.Fatalf("kcat with a wrong password: %v, want a failure\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Authentication failed") && !strings.Contains(stderr.String(), "SASL") {
		t.Logf("kcat with a wrong password said:\n%s", stderr.String())
	}

	adminFlags := []string{"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin", "--sasl-password", "admin-secret"}
	cairnOK(t, server, "", append([]string{"user", "create", "alice", "--password", "alice-secret", "--iterations", "8192"}, adminFlags...)...)
	if list := cairnOK(t, server, "", append([]string{"user", "list"}, adminFlags...)...); list != "admin\tSCRAM-SHA-512(4096)\nalice\tSCRAM-SHA-512(8192)\n" {
		t.Fatalf("user list:\n%s", list)
	}
	if result := runCairnCLI(t, server, "", "user", "list"); result.exitCode == 0 {
		t.Fatal("user list without credentials succeeded against a SASL listener")
	}

	config := saramaConfig(&sarama.V3_6_0_0)
	config.Net.SASL.Enable = true
	config.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
	config.Net.SASL.User, config.Net.SASL.Password = "alice", "alice-secret"
	config.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaScram{} }
	cairnOK(t, server, "", append([]string{"topic", "create", "sarama-sasl"}, adminFlags...)...)
	sent := saramaProduce(t, server.kafkaAddr, config, "sarama-sasl", 10)
	saramaConsume(t, server.kafkaAddr, config, "sarama-sasl", sent)

	server.Stop()
	server.Restart()
	if got := consume("alice", "alice-secret"); got != "k1=hello\n" {
		t.Fatalf("kcat as alice after a restart consumed %q", got)
	}

	cairnOK(t, server, "", append([]string{"user", "passwd", "alice", "--password", "new-secret"}, adminFlags...)...)
	if got := consume("alice", "new-secret"); got != "k1=hello\n" {
		t.Fatalf("kcat as alice with her new password consumed %q", got)
	}
	cairnOK(t, server, "", append([]string{"user", "delete", "alice"}, adminFlags...)...)
	if list := cairnOK(t, server, "", append([]string{"user", "list"}, adminFlags...)...); list != "admin\tSCRAM-SHA-512(4096)\n" {
		t.Fatalf("user list after deleting alice:\n%s", list)
	}
	if result := runCairnCLI(t, server, "", append([]string{"user", "delete", "alice"}, adminFlags...)...); result.exitCode == 0 || !strings.Contains(result.stderr, "no user") {
		t.Fatalf("deleting alice twice: exit %d, %s", result.exitCode, result.stderr)
	}
}

// saramaScram adapts franz-go's SCRAM-SHA-512 client to sarama's SCRAMClient.
type saramaScram struct {
	user, password string
	session        kgosasl.Session
	done           bool
}

func (s *saramaScram) Begin(user, password, _ string) error {
	s.user, s.password = user, password
	return nil
}

func (s *saramaScram) Step(challenge string) (string, error) {
	if s.session == nil {
		session, first, err := scram.Auth{User: s.user, Pass: s.password}.AsSha512Mechanism().Authenticate(context.Background(), "")
		s.session = session
		return string(first), err
	}
	done, response, err := s.session.Challenge([]byte(challenge))
	s.done = done
	return string(response), err
}

func (s *saramaScram) Done() bool { return s.done }

// TestKafkajsSASL: kafkajs produces over SCRAM-SHA-512 and PLAIN as a
// user staged before the first start, and is refused with a wrong
// password; franz-go reads both messages back as that user.
func TestKafkajsSASL(t *testing.T) {
	node := requireTool(t, "node")
	jsDir, err := filepath.Abs("js")
	if err != nil {
		t.Fatalf("find js dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "kafkajs", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kafkajs is not installed in %s (run npm ci there): %v", jsDir, err)
		}
		t.Skipf("kafkajs is not installed in %s; run `npm ci` there to run this test", jsDir)
	}
	dir := t.TempDir()
	cairnOffline(t, "user", "create", "js", "--password", "js-secret", "--data-dir", dir)
	server := startCairn(t, dir, "--sasl-mechanisms", "SCRAM-SHA-512,PLAIN")
	runTool(t, kafkajsWaitMax, "", []string{
		"CAIRN_BROKER=" + server.kafkaAddr, "CAIRN_TOPIC=kafkajs-sasl", "CAIRN_USER=js", "CAIRN_PASSWORD=js-secret",
	}, node, filepath.Join(jsDir, "sasl.js"))

	client, err := kgo.NewClient(kgo.SeedBrokers(server.kafkaAddr), kgo.ConsumeTopics("kafkajs-sasl"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SASL(scram.Auth{User: "js", Pass: "js-secret"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	got := map[string]string{}
	ctx := testContext(t)
	for len(got) < 2 && ctx.Err() == nil {
		fetches := client.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) { got[string(r.Key)] = string(r.Value) })
	}
	if got["scram-sha-512"] != "from kafkajs over scram-sha-512" || got["plain"] != "from kafkajs over plain" {
		t.Fatalf("read back %v", got)
	}
}
