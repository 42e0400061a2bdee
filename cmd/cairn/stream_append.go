package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

func newStreamAppendCommand() *cobra.Command {
	var flags streamFlags
	var typ, data, id, contentType, expected string
	var metadata []string
	cmd := &cobra.Command{
		Use:   "append TOPIC/STREAM",
		Short: "Append an event to a stream",
		Long: `Append one event and print the stream's new revision. --data is the event's
data: JSON or text as given, @FILE for a file's contents, or - for stdin.
With --expected-revision the append happens only if the stream is in that
state (any, no-stream, exists, or the revision of its last event); otherwise
the command exits 1 and says the stream's actual revision. Re-running with
the same --id is a retry: it prints the original revision and writes nothing.`,
		Example: `  cairn stream append orders/order-1 --type OrderPlaced --data '{"sku":"tea","qty":2}'
  cairn stream append orders/order-1 --type OrderPaid --data @payment.json --expected-revision 0
  echo 'note' | cairn stream append orders/order-1 --type Noted --data - --content-type text/plain`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, stream, err := splitStream(args[0])
			if err != nil {
				return err
			}
			exp, err := parseExpected(expected)
			if err != nil {
				return err
			}
			md, err := parseMetadata(metadata)
			if err != nil {
				return err
			}
			body, err := readData(data, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if contentType == "" {
				// The server takes an empty content type for JSON; text
				// must not be labelled so.
				contentType = "application/octet-stream"
				if json.Valid(body) {
					contentType = "application/json"
				}
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := commandContext(cmd, flags.timeout)
			defer cancel()
			res, err := c.Append(ctx, topic, stream, exp, client.EventData{ID: id, Type: typ, Data: body, ContentType: contentType, Metadata: md})
			if err != nil {
				return stopError(ctx, explain(err))
			}
			if res.Duplicate {
				fmt.Fprintf(cmd.ErrOrStderr(), "already appended: event %s is at revision %d\n", id, res.LastRevision)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), res.LastRevision)
			return err
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().StringVar(&typ, "type", "", "event type, e.g. OrderPlaced (required)")
	cmd.Flags().StringVar(&data, "data", "", "event data: JSON or text, @FILE, or - for stdin")
	cmd.Flags().StringVar(&id, "id", "", "event id (a UUID); default a random one")
	cmd.Flags().StringVar(&contentType, "content-type", "", "content type of the data; default application/json when it parses as JSON, else application/octet-stream")
	cmd.Flags().StringArrayVar(&metadata, "metadata", nil, "NAME=VALUE metadata, stored as a record header (repeatable)")
	cmd.Flags().StringVar(&expected, "expected-revision", "any", "any, no-stream, exists, or the revision of the stream's last event")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

// parseMetadata reads the --metadata NAME=VALUE items.
func parseMetadata(items []string) (map[string]string, error) {
	md := make(map[string]string, len(items))
	for _, kv := range items {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--metadata %q: want NAME=VALUE", kv)
		}
		if _, dup := md[k]; dup {
			return nil, fmt.Errorf("--metadata %q: %s given twice", kv, k)
		}
		md[k] = v
	}
	return md, nil
}

// eventDataBytesMax bounds --data read from a file or stdin: the largest
// message the client sends, so a bigger one fails before it is sent.
const eventDataBytesMax = client.DefaultMessageBytesMax

// readData resolves --data.
func readData(data string, stdin io.Reader) ([]byte, error) {
	switch {
	case data == "-":
		return readBounded(stdin, "stdin")
	case strings.HasPrefix(data, "@"):
		f, err := os.Open(data[1:])
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
		defer f.Close()
		return readBounded(f, data[1:])
	}
	return []byte(data), nil
}

func readBounded(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, eventDataBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("read data from %s: %w", name, err)
	}
	if len(b) > eventDataBytesMax {
		return nil, fmt.Errorf("data from %s: more than %d bytes", name, eventDataBytesMax)
	}
	return b, nil
}
