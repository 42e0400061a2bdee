package cdc

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// UnavailableValue stands for a TOASTed column PostgreSQL did not send
// because the change left it as it was: the placeholder Debezium uses, so
// that consumers never mistake it for NULL.
const UnavailableValue = "__debezium_unavailable_value"

// arrayDepthMax bounds the nesting of an array value (PostgreSQL allows 6).
const arrayDepthMax = 6

// Renderer turns PostgreSQL's text output of a column value into the JSON
// value Debezium's JSON converter writes (schemas disabled) with
// decimal.handling.mode=string, time.precision.mode=adaptive_time_microseconds
// and binary.handling.mode=base64:
//
//   - bool → true/false; int2, int4, int8, oid → numbers; float4, float8 →
//     numbers, NaN and ±Infinity as the strings "NaN", "Infinity", "-Infinity"
//   - numeric → its exact decimal string ("12.50", "NaN")
//   - text, varchar, char, name, uuid, json, jsonb, enums, and any type not
//     listed here → the text PostgreSQL sent (json as a string, as
//     Debezium's io.debezium.data.Json)
//   - bytea → base64 of the bytes
//   - date → days since 1970-01-01
//   - time → microseconds since midnight; timetz → its text, as sent
//   - timestamp → microseconds since the epoch (milliseconds for a declared
//     precision of 0 to 3, as Debezium's adaptive mode); ±infinity → the
//     largest and smallest int64
//   - timestamptz → ISO-8601 in UTC ("2026-01-02T03:04:05.123456Z")
//   - interval → microseconds, a month counted as 30.4375 days (Debezium's
//     default interval.handling.mode=numeric, io.debezium.time.MicroDuration)
//   - arrays → JSON arrays of their elements rendered by these rules
//
// A Renderer is not safe for concurrent use (its pgx type map caches plans).
type Renderer struct {
	types *pgtype.Map
}

// NewRenderer returns a Renderer.
func NewRenderer() *Renderer { return &Renderer{types: pgtype.NewMap()} }

// Render renders text, PostgreSQL's output of a value of type oid with type
// modifier typmod (-1 when none).
func (r *Renderer) Render(oid uint32, typmod int32, text []byte) (json.RawMessage, error) {
	v, err := r.render(oid, typmod, text, 0)
	if err != nil {
		return nil, fmt.Errorf("type %d value %q: %w", oid, truncate(text), err)
	}
	return v, nil
}

func (r *Renderer) render(oid uint32, typmod int32, text []byte, depth int) (json.RawMessage, error) {
	s := string(text)
	switch oid {
	case pgtype.BoolOID:
		switch s {
		case "t":
			return json.RawMessage("true"), nil
		case "f":
			return json.RawMessage("false"), nil
		}
		return nil, fmt.Errorf("not a bool")
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID:
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return nil, err
		}
		return json.RawMessage(s), nil
	case pgtype.Float4OID, pgtype.Float8OID:
		return renderFloat(s)
	case pgtype.ByteaOID:
		b, err := decodeBytea(s)
		if err != nil {
			return nil, err
		}
		return jsonString(base64.StdEncoding.EncodeToString(b)), nil
	case pgtype.DateOID:
		return r.renderDate(text)
	case pgtype.TimeOID:
		var t pgtype.Time
		if err := r.types.Scan(oid, pgtype.TextFormatCode, text, &t); err != nil {
			return nil, err
		}
		return json.RawMessage(strconv.FormatInt(t.Microseconds, 10)), nil
	case pgtype.TimestampOID:
		return r.renderTimestamp(text, typmod)
	case pgtype.TimestamptzOID:
		return r.renderTimestamptz(text)
	case pgtype.IntervalOID:
		return r.renderInterval(text)
	}
	if elem, ok := r.arrayElement(oid); ok {
		return r.renderArray(elem, typmod, s, depth)
	}
	// numeric, the string types, uuid, json, jsonb, enums, unknown types.
	return jsonString(s), nil
}

// Debezium's interval.handling.mode=numeric (its default) counts a month as
// 365.25 / 12 = 30.4375 days: 2,629,800 seconds exactly, so the sum stays in
// integers.
const (
	intervalMonthMicros = 2_629_800 * 1_000_000
	intervalDayMicros   = 86_400 * 1_000_000
)

// renderInterval renders an interval as Debezium's MicroDuration: a number
// of microseconds, months at their average length. Past int64 (some
// 178,000 years), and PostgreSQL 17's ±infinity, it saturates, as Debezium's
// conversion of its double does.
func (r *Renderer) renderInterval(text []byte) (json.RawMessage, error) {
	switch string(text) {
	case "infinity":
		return json.RawMessage(strconv.FormatInt(math.MaxInt64, 10)), nil
	case "-infinity":
		return json.RawMessage(strconv.FormatInt(math.MinInt64, 10)), nil
	}
	var iv pgtype.Interval
	if err := r.types.Scan(pgtype.IntervalOID, pgtype.TextFormatCode, text, &iv); err != nil {
		return nil, err
	}
	approx := float64(iv.Months)*intervalMonthMicros + float64(iv.Days)*intervalDayMicros + float64(iv.Microseconds)
	switch {
	case approx >= math.MaxInt64:
		return json.RawMessage(strconv.FormatInt(math.MaxInt64, 10)), nil
	case approx <= math.MinInt64:
		return json.RawMessage(strconv.FormatInt(math.MinInt64, 10)), nil
	}
	micros := int64(iv.Months)*intervalMonthMicros + int64(iv.Days)*intervalDayMicros + iv.Microseconds
	return json.RawMessage(strconv.FormatInt(micros, 10)), nil
}

func renderFloat(s string) (json.RawMessage, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, err
	}
	switch {
	case math.IsNaN(f):
		return jsonString("NaN"), nil
	case math.IsInf(f, 1):
		return jsonString("Infinity"), nil
	case math.IsInf(f, -1):
		return jsonString("-Infinity"), nil
	}
	return json.RawMessage(s), nil
}

// decodeBytea reads bytea's hex output (\x0102...), the default since
// PostgreSQL 9.0.
func decodeBytea(s string) ([]byte, error) {
	if !strings.HasPrefix(s, `\x`) {
		return nil, fmt.Errorf("bytea not in hex output (bytea_output=hex)")
	}
	return hex.DecodeString(s[2:])
}

func (r *Renderer) renderDate(text []byte) (json.RawMessage, error) {
	var d pgtype.Date
	if err := r.types.Scan(pgtype.DateOID, pgtype.TextFormatCode, text, &d); err != nil {
		return nil, err
	}
	switch d.InfinityModifier {
	case pgtype.Infinity:
		return json.RawMessage(strconv.Itoa(math.MaxInt32)), nil
	case pgtype.NegativeInfinity:
		return json.RawMessage(strconv.Itoa(math.MinInt32)), nil
	}
	days := d.Time.Unix() / 86400
	if d.Time.Unix() < 0 && d.Time.Unix()%86400 != 0 {
		days--
	}
	return json.RawMessage(strconv.FormatInt(days, 10)), nil
}

func (r *Renderer) renderTimestamp(text []byte, typmod int32) (json.RawMessage, error) {
	var ts pgtype.Timestamp
	if err := r.types.Scan(pgtype.TimestampOID, pgtype.TextFormatCode, text, &ts); err != nil {
		return nil, err
	}
	switch ts.InfinityModifier {
	case pgtype.Infinity:
		return json.RawMessage(strconv.FormatInt(math.MaxInt64, 10)), nil
	case pgtype.NegativeInfinity:
		return json.RawMessage(strconv.FormatInt(math.MinInt64, 10)), nil
	}
	if typmod >= 0 && typmod <= 3 {
		return json.RawMessage(strconv.FormatInt(ts.Time.UnixMilli(), 10)), nil
	}
	return json.RawMessage(strconv.FormatInt(ts.Time.UnixMicro(), 10)), nil
}

func (r *Renderer) renderTimestamptz(text []byte) (json.RawMessage, error) {
	var ts pgtype.Timestamptz
	if err := r.types.Scan(pgtype.TimestamptzOID, pgtype.TextFormatCode, text, &ts); err != nil {
		return nil, err
	}
	switch ts.InfinityModifier {
	case pgtype.Infinity:
		return jsonString("infinity"), nil
	case pgtype.NegativeInfinity:
		return jsonString("-infinity"), nil
	}
	return jsonString(ts.Time.UTC().Format(time.RFC3339Nano)), nil
}

// arrayElement returns the element type of an array type pgx knows.
func (r *Renderer) arrayElement(oid uint32) (uint32, bool) {
	t, ok := r.types.TypeForOID(oid)
	if !ok {
		return 0, false
	}
	ac, ok := t.Codec.(*pgtype.ArrayCodec)
	if !ok {
		return 0, false
	}
	return ac.ElementType.OID, true
}

// renderArray renders an array's text output, {1,2,NULL} or
// {{"a b",c},{d,e}}, element by element.
func (r *Renderer) renderArray(elem uint32, typmod int32, s string, depth int) (json.RawMessage, error) {
	if depth >= arrayDepthMax {
		return nil, fmt.Errorf("array nested deeper than %d", arrayDepthMax)
	}
	if i := strings.Index(s, "={"); i > 0 && strings.HasPrefix(s, "[") {
		s = s[i+1:] // explicit bounds, [0:2]={...}: the elements are what count
	}
	p := arrayParser{s: s}
	v, err := p.parse()
	if err != nil {
		return nil, err
	}
	if p.i != len(s) {
		return nil, fmt.Errorf("array: text after the closing brace")
	}
	return r.renderElements(elem, typmod, v, depth)
}

func (r *Renderer) renderElements(elem uint32, typmod int32, v arrayValue, depth int) (json.RawMessage, error) {
	out := []byte{'['}
	for i, e := range v.elements {
		if i > 0 {
			out = append(out, ',')
		}
		var rendered json.RawMessage
		var err error
		switch {
		case e.null:
			rendered = json.RawMessage("null")
		case e.nested != nil:
			rendered, err = r.renderElements(elem, typmod, *e.nested, depth+1)
		default:
			rendered, err = r.render(elem, typmod, []byte(e.text), depth+1)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rendered...)
	}
	return append(out, ']'), nil
}

type arrayValue struct{ elements []arrayElement }

type arrayElement struct {
	text   string
	null   bool
	nested *arrayValue
}

// arrayParser reads PostgreSQL's array output: braces, commas, elements
// double-quoted (with backslash escapes) when they need it, NULL unquoted.
type arrayParser struct {
	s     string
	i     int
	depth int
}

func (p *arrayParser) parse() (arrayValue, error) {
	if p.depth >= arrayDepthMax {
		return arrayValue{}, fmt.Errorf("array nested deeper than %d", arrayDepthMax)
	}
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return arrayValue{}, fmt.Errorf("array: want '{' at %d", p.i)
	}
	p.i++
	var v arrayValue
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		e, err := p.element()
		if err != nil {
			return arrayValue{}, err
		}
		v.elements = append(v.elements, e)
		if p.i >= len(p.s) {
			return arrayValue{}, fmt.Errorf("array: unterminated")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return v, nil
		default:
			return arrayValue{}, fmt.Errorf("array: unexpected %q at %d", p.s[p.i], p.i)
		}
	}
}

func (p *arrayParser) element() (arrayElement, error) {
	if p.i >= len(p.s) {
		return arrayElement{}, fmt.Errorf("array: unterminated")
	}
	switch p.s[p.i] {
	case '{':
		p.depth++
		nested, err := p.parse()
		p.depth--
		return arrayElement{nested: &nested}, err
	case '"':
		var b strings.Builder
		for p.i++; p.i < len(p.s); p.i++ {
			c := p.s[p.i]
			switch c {
			case '\\':
				p.i++
				if p.i < len(p.s) {
					b.WriteByte(p.s[p.i])
				}
			case '"':
				p.i++
				return arrayElement{text: b.String()}, nil
			default:
				b.WriteByte(c)
			}
		}
		return arrayElement{}, fmt.Errorf("array: unterminated quoted element")
	}
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != '}' {
		p.i++
	}
	text := p.s[start:p.i]
	if text == "NULL" {
		return arrayElement{null: true}, nil
	}
	return arrayElement{text: text}, nil
}

func jsonString(s string) json.RawMessage {
	return appendJSONString(nil, s)
}

// appendJSONString appends s quoted exactly as encoding/json writes it.
// Most values are printable ASCII needing no escape (and none of the HTML
// characters encoding/json escapes): those are copied; the rest go through
// encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// truncate shortens a value quoted in an error.
func truncate(b []byte) []byte {
	const bytesMax = 64
	if len(b) > bytesMax {
		return b[:bytesMax]
	}
	return b
}
