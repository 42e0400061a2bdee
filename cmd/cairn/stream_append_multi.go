package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
)

// multiFile is the file cairn stream append-multi reads.
type multiFile struct {
	Parts []multiFilePart `json:"parts"`
}

type multiFilePart struct {
	Stream           string           `json:"stream"` // TOPIC/STREAM
	ExpectedRevision json.RawMessage  `json:"expected_revision"`
	Events           []multiFileEvent `json:"events"`
}

type multiFileEvent struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Data        json.RawMessage   `json:"data"`
	ContentType string            `json:"content_type"`
	Metadata    map[string]string `json:"metadata"`
}

func newStreamAppendMultiCommand() *cobra.Command {
	var flags streamFlags
	var file string
	cmd := &cobra.Command{
		Use:   "append-multi --file FILE",
		Short: "Append events to several streams atomically",
		Long: `Append to several streams, of any topics, in one AppendMulti: every part is
written at its expected revision, or none is. FILE (- for stdin) is JSON:

  {"parts": [
    {"stream": "TOPIC/STREAM", "expected_revision": "no-stream",
     "events": [{"type": "T", "data": {...}, "id": "UUID (optional)",
                 "content_type": "optional", "metadata": {"k": "v"}}]}]}

expected_revision is any (the default), no-stream, exists, or the revision of
the stream's last event (a number or a string). data is a JSON value, stored
as it is written; with a content_type other than application/json, a JSON
string is stored as its text. The command prints each part's stream and new revision, in
the file's order. When expectations fail it writes nothing, names each failed
part with its stream's actual revision, and exits 1. Re-running a file whose
events have ids is a retry: it prints the original revisions.`,
		Example: `  cairn stream append-multi --file reserve.json
  cat reserve.json | cairn stream append-multi --file -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readMultiFile(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			parts, err := parseMultiFile(body)
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := commandContext(cmd, flags.timeout)
			defer cancel()
			res, err := c.AppendMulti(ctx, parts...)
			if err != nil {
				return stopError(ctx, explain(err))
			}
			for i, r := range res {
				suffix := ""
				if r.Duplicate {
					suffix = " (already appended)"
				}
				if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s/%s %d%s\n", parts[i].Topic, parts[i].Stream, r.LastRevision, suffix); err != nil {
					return err
				}
			}
			return nil
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().StringVar(&file, "file", "", "the parts as JSON (see above), - for stdin (required)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func readMultiFile(file string, stdin io.Reader) ([]byte, error) {
	if file == "-" {
		return readBounded(stdin, "stdin")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	defer f.Close()
	return readBounded(f, file)
}

// parseMultiFile turns the file into the SDK's parts.
func parseMultiFile(body []byte) ([]client.AppendPart, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var f multiFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	if len(f.Parts) == 0 {
		return nil, fmt.Errorf("--file: no parts")
	}
	parts := make([]client.AppendPart, len(f.Parts))
	for i, p := range f.Parts {
		topic, stream, err := splitStream(p.Stream)
		if err != nil {
			return nil, fmt.Errorf("--file: part %d: %w", i, err)
		}
		exp, err := parseExpected(expectedText(p.ExpectedRevision))
		if err != nil {
			return nil, fmt.Errorf("--file: part %d: %w", i, err)
		}
		if len(p.Events) == 0 {
			return nil, fmt.Errorf("--file: part %d (%s): no events", i, p.Stream)
		}
		parts[i] = client.AppendPart{Topic: topic, Stream: stream, Expected: exp}
		for j, ev := range p.Events {
			if ev.Type == "" {
				return nil, fmt.Errorf("--file: part %d event %d: no type", i, j)
			}
			data := []byte(ev.Data)
			if len(data) == 0 {
				data = []byte("null")
			}
			ct := ev.ContentType
			if ct == "" {
				ct = "application/json"
			}
			var text string
			if ct != "application/json" && json.Unmarshal(data, &text) == nil {
				data = []byte(text) // text data given as a JSON string
			}
			parts[i].Events = append(parts[i].Events, client.EventData{ID: ev.ID, Type: ev.Type, Data: data, ContentType: ct, Metadata: ev.Metadata})
		}
	}
	return parts, nil
}

// expectedText reads expected_revision: a string as --expected-revision
// takes it, or a bare revision number.
func expectedText(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(bytes.TrimSpace(raw))
}
