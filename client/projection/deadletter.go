package projection

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/client"
)

// Metadata of dead-lettered events, part of the format of "<topic>.dlq".
const (
	MetadataSourceTopic     = "dlq-source-topic"
	MetadataSourcePartition = "dlq-source-partition"
	MetadataSourceOffset    = "dlq-source-offset"
	MetadataSourceRevision  = "dlq-source-revision"
	MetadataSourceEventID   = "dlq-source-event-id"
	MetadataError           = "dlq-error"
	MetadataAttempts        = "dlq-attempts"
	MetadataProjection      = "dlq-projection"

	// UntypedEventType stands in for the type of a record that has none
	// (one from a plain Kafka producer), which an append requires.
	UntypedEventType = "cairn.untyped"
)

// Limits that keep a dead letter appendable whatever the poison event held.
const (
	// metadataEntriesMax is the server's bound on an event's metadata.
	metadataEntriesMax = 64
	errorBytesMax      = 4096
)

// deadLetterNamespace derives dead letters' ids from their source, so that
// dead-lettering an event again (after a crash before its checkpoint was
// stored) is recognised by the server as a retry.
var deadLetterNamespace = uuid.MustParse("6f1c2f0e-3c55-4d4e-9a57-5b0c1f7d2a10")

// deadLetterEvent is ev as it goes to the dead-letter topic.
func deadLetterEvent(projection string, ev client.RecordedEvent, cause error, attempts int) client.EventData {
	md := map[string]string{
		MetadataSourceTopic:     ev.Topic,
		MetadataSourcePartition: strconv.FormatInt(int64(ev.Position.Partition), 10),
		MetadataSourceOffset:    strconv.FormatInt(ev.Position.Offset, 10),
		MetadataSourceRevision:  strconv.FormatUint(ev.Revision, 10),
		MetadataSourceEventID:   ev.ID,
		MetadataError:           truncate(cause.Error(), errorBytesMax),
		MetadataAttempts:        strconv.Itoa(attempts),
		MetadataProjection:      projection,
	}
	// The event's own metadata comes along as far as the bound allows,
	// in name order so the choice is stable.
	for _, k := range slices.Sorted(maps.Keys(ev.Metadata)) {
		if len(md) == metadataEntriesMax {
			break
		}
		if _, ours := md[k]; !ours {
			md[k] = ev.Metadata[k]
		}
	}
	typ := ev.Type
	if typ == "" {
		typ = UntypedEventType
	}
	source := fmt.Sprintf("%s\x00%s\x00%d\x00%d", projection, ev.Topic, ev.Position.Partition, ev.Position.Offset)
	return client.EventData{
		ID:          uuid.NewSHA1(deadLetterNamespace, []byte(source)).String(),
		Type:        typ,
		Data:        ev.Data,
		ContentType: ev.ContentType,
		Metadata:    md,
	}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// deadLetter appends ev to the dead-letter topic, then moves the
// checkpoint past it in a transaction of its own.
func (r *Runner) deadLetter(ctx context.Context, ev client.RecordedEvent, cause error, attempts int) error {
	dl := deadLetterEvent(r.name, ev, cause, attempts)
	res, err := r.client.Append(ctx, r.opts.deadLetterTopic, ev.Stream, client.Any, dl)
	if err != nil {
		return fmt.Errorf("projection %s: dead-letter event %s: %w", r.name, ev.Position, err)
	}
	r.opts.logger.Error("projection dead-lettered an event", "projection", r.name, "event", ev.Position.String(), "stream", ev.Stream,
		"type", ev.Type, "attempts", attempts, "err", cause, "dead_letter_topic", r.opts.deadLetterTopic, "dead_letter", res.Position.String())
	return r.storeCheckpoints(ctx, []client.Position{{Partition: ev.Position.Partition, Offset: ev.Position.Offset + 1}})
}
