package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/tlsconf"
)

// streamFlags are the flags every stream subcommand shares.
type streamFlags struct {
	server  string
	timeout time.Duration
	tls     tlsconf.ClientFiles
	// user and password (HTTP Basic) or token (Bearer), for a server with
	// --http-auth: the same names as the Kafka commands' SASL flags.
	user, password, token string
}

func (f *streamFlags) register(flags *pflag.FlagSet) {
	flags.StringVar(&f.server, "server", "http://127.0.0.1:8080", "the event-store API: cairn serve's --http-addr as a URL")
	flags.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long one call may take (subscribe runs until stopped)")
	registerTLSFlags(flags, &f.tls, "--server (an https:// URL; cairn serve --http-tls)")
	flags.StringVar(&f.user, "sasl-user", "", "authenticate as this cairn user (HTTP Basic, for cairn serve --http-auth), with --sasl-password")
	flags.StringVar(&f.password, "sasl-password", "", "the user's password (better in CAIRN_SASL_PASSWORD than on the command line)")
	flags.StringVar(&f.token, "sasl-token", "", "authenticate with this JWT (HTTP Bearer, checked as OAUTHBEARER; better in CAIRN_SASL_TOKEN)")
}

// client returns an SDK client of --server; the caller closes it. Its HTTP
// transport speaks HTTP/2 without TLS on http:// URLs, which subscriptions
// (server streaming) need; on https:// URLs it checks the server's
// certificate against --tls-ca-file and shows --tls-cert-file.
func (f *streamFlags) client() (*client.Client, error) {
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %s: must be positive", f.timeout)
	}
	tlsCfg, err := tlsconf.Client(f.tls)
	if err != nil {
		return nil, err
	}
	var opts []client.Option
	if tlsCfg != nil {
		if !strings.HasPrefix(f.server, "https://") {
			return nil, fmt.Errorf("--server %q: TLS flags need an https:// URL", f.server)
		}
		opts = append(opts, client.WithTLS(tlsCfg))
	}
	switch {
	case f.token != "" && f.user != "":
		return nil, fmt.Errorf("--sasl-token and --sasl-user: give one")
	case f.token != "":
		opts = append(opts, client.WithBearerToken(f.token))
	case f.user != "" && f.password == "":
		return nil, fmt.Errorf("--sasl-user %s needs --sasl-password", f.user)
	case f.user != "":
		opts = append(opts, client.WithBasicAuth(f.user, f.password))
	}
	c, err := client.New(f.server, opts...)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", f.server, err)
	}
	return c, nil
}

func newStreamCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Append to, read, subscribe to and manage event-store streams",
		Long: `Work with the event store: streams are all records with one key in a topic
with cleanup.policy=stream (appending to a missing topic creates one). These
commands use the event-store API on cairn serve's HTTP address (--server,
default http://127.0.0.1:8080, or CAIRN_SERVER). A stream is named
TOPIC/STREAM, split at the first slash: the stream name may itself contain
slashes.`,
		Example: `  cairn stream append orders/order-1 --type OrderPlaced --data '{"sku":"tea"}' --expected-revision no-stream
  cairn stream read orders/order-1 --json
  cairn stream subscribe orders --type-prefix Order
  cairn stream metadata orders/order-1 --max-count 100
  cairn stream delete orders/order-1`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newStreamAppendCommand(), newStreamAppendMultiCommand(), newStreamReadCommand(), newStreamSubscribeCommand(),
		newStreamMetadataCommand(), newStreamDeleteCommand())
	return cmd
}

// splitStream splits TOPIC/STREAM at the first slash.
func splitStream(arg string) (topic, stream string, err error) {
	topic, stream, ok := strings.Cut(arg, "/")
	if !ok || topic == "" || stream == "" {
		return "", "", fmt.Errorf("%q: want TOPIC/STREAM", arg)
	}
	return topic, stream, nil
}

// parseExpected reads --expected-revision.
func parseExpected(s string) (client.Expected, error) {
	switch s {
	case "", "any":
		return client.Any, nil
	case "no-stream":
		return client.NoStream, nil
	case "exists":
		return client.StreamExists, nil
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return client.Any, fmt.Errorf("--expected-revision %q: want any, no-stream, exists or a revision number", s)
	}
	return client.Exact(n), nil
}

// explain turns the client's errors into what a person at a terminal needs.
func explain(err error) error {
	var multi *client.AppendMultiError
	if errors.As(err, &multi) {
		lines := []string{"nothing written: wrong expected revisions"}
		for _, m := range multi.Mismatches {
			lines = append(lines, fmt.Sprintf("  part %d: %s", m.Part, wrongText(m.WrongExpectedRevisionError)))
		}
		return errors.New(strings.Join(lines, "\n"))
	}
	var wrong *client.WrongExpectedRevisionError
	if errors.As(err, &wrong) {
		return fmt.Errorf("wrong expected revision for %s", wrongText(wrong))
	}
	return err
}

func wrongText(wrong *client.WrongExpectedRevisionError) string {
	if wrong.Actual < 0 {
		return fmt.Sprintf("%s/%s: expected %s, but the stream has no events", wrong.Topic, wrong.Stream, expectedFlag(wrong.Expected))
	}
	return fmt.Sprintf("%s/%s: expected %s, but its revision is %d", wrong.Topic, wrong.Stream, expectedFlag(wrong.Expected), wrong.Actual)
}

// expectedFlag writes an expectation as --expected-revision takes it.
func expectedFlag(e client.Expected) string {
	if e == client.StreamExists {
		return "exists"
	}
	return e.String()
}

// eventPrinter writes events as text lines or JSON lines; read and
// subscribe share it so their output can be processed alike.
type eventPrinter struct {
	out  io.Writer
	json bool
}

// eventJSON is the --json line of an event.
type eventJSON struct {
	Topic       string    `json:"topic"`
	Stream      string    `json:"stream"`
	Revision    uint64    `json:"revision"`
	Partition   int32     `json:"partition"`
	Offset      int64     `json:"offset"`
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Time        time.Time `json:"time"`
	ContentType string    `json:"content_type,omitempty"`
	Data        any       `json:"data"`
	// DataBase64 holds the exact bytes when the data is not valid UTF-8,
	// as consume --json does for values: Data is then a lossy rendering.
	DataBase64 string            `json:"data_base64,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// textEscaper keeps one event on one line with its fields tab-separated,
// whatever its data holds.
var textEscaper = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`)

func (p eventPrinter) print(ev client.RecordedEvent) error {
	if p.json {
		line := eventJSON{Topic: ev.Topic, Stream: ev.Stream, Revision: ev.Revision, Partition: ev.Position.Partition,
			Offset: ev.Position.Offset, ID: ev.ID, Type: ev.Type, Time: ev.Time.UTC(), ContentType: ev.ContentType,
			Data: jsonData(ev), Metadata: ev.Metadata}
		if !utf8.Valid(ev.Data) {
			line.DataBase64 = base64.StdEncoding.EncodeToString(ev.Data)
		}
		encoded, err := json.Marshal(line)
		if err != nil {
			return fmt.Errorf("encode event %s/%s@%d: %w", ev.Topic, ev.Stream, ev.Revision, err)
		}
		_, err = fmt.Fprintf(p.out, "%s\n", encoded)
		return err
	}
	_, err := fmt.Fprintf(p.out, "%s\t%d\t%s\t%s\t%s\t%s\n", ev.Stream, ev.Revision, ev.Type, ev.ID,
		ev.Time.UTC().Format(time.RFC3339Nano), textEscaper.Replace(string(ev.Data)))
	return err
}

// jsonData is an event's data as it goes into a JSON line: the JSON value
// itself when the data is JSON (by content type, empty meaning JSON as on
// the server) and parses, otherwise a string.
func jsonData(ev client.RecordedEvent) any {
	if (ev.ContentType == "" || strings.Contains(ev.ContentType, "json")) && json.Valid(ev.Data) {
		return json.RawMessage(ev.Data)
	}
	return string(ev.Data)
}
