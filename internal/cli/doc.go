// Package cli holds the pure helpers behind the cairn command-line client:
// binding CAIRN_* environment variables to flags (not to flags marked
// CommandLineOnly), parsing --from, key=value and header arguments, splitting
// input lines into keys and values, rendering consumed records as templates
// or JSON lines, and the bookkeeping for progress reports and --until-end.
//
// Nothing here dials a broker or reads a clock: callers pass in what the
// cluster reported and the current time, so every helper is tested with plain
// values.
//
// # JSON lines
//
// WriteJSONLine writes one consumed record as one JSON object per line:
//
//		{"topic":"orders","partition":0,"offset":41,"timestamp":"2026-01-02T03:04:05.006Z",
//		 "key":"order-42","value":"created","headers":[{"key":"trace","value":"ab12"}]}
//
//	  - timestamp is RFC 3339 with nanoseconds, in UTC.
//	  - key and value are null when the record has a null key or value
//	    (a tombstone), otherwise strings.
//	  - When key, value or a header value is not valid UTF-8, the string field
//	    holds a lossy rendering (each invalid byte becomes U+FFFD) and a sibling
//	    field key_base64, value_base64 or value_base64 (inside the header) holds
//	    the exact bytes in standard base64 with padding. The base64 field is
//	    absent when the bytes are valid UTF-8, so its presence alone tells a
//	    reader that the string field is not the exact data.
//	  - headers is always an array, in record order, duplicates kept.
package cli
