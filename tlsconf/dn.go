package tlsconf

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
)

// attributeKeywords are the attribute types RFC 2253 names by keyword (and
// Java's X500Principal with them, which Kafka's rules are written
// against); others are written as their dotted OID with a hex value.
var attributeKeywords = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.9":                    "STREET",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
}

// rdnSET and attribute keep each value's encoding, which a name
// without a keyword shows as hex (pkix's parse would lose it).
type rdnSET []attribute

type attribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// SubjectDN is cert's subject distinguished name in RFC 2253 form, as
// Kafka's rules see it: the last RDN of the encoding first, attributes of
// one RDN joined with +, special characters escaped.
func SubjectDN(cert *x509.Certificate) (string, error) {
	var seq []rdnSET
	if rest, err := asn1.Unmarshal(cert.RawSubject, &seq); err != nil {
		return "", fmt.Errorf("tls: certificate subject: %w", err)
	} else if len(rest) > 0 {
		return "", fmt.Errorf("tls: certificate subject: %d trailing bytes", len(rest))
	}
	return formatDN(seq), nil
}

func formatDN(seq []rdnSET) string {
	var b strings.Builder
	for i := len(seq) - 1; i >= 0; i-- {
		if i != len(seq)-1 {
			b.WriteByte(',')
		}
		for j, atv := range seq[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			oid := atv.Type.String()
			var s string
			_, err := asn1.Unmarshal(atv.Value.FullBytes, &s)
			if kw, ok := attributeKeywords[oid]; ok && err == nil {
				b.WriteString(kw)
				b.WriteByte('=')
				b.WriteString(escapeValue(s))
				continue
			}
			b.WriteString(oid)
			b.WriteString("=#")
			b.WriteString(hex.EncodeToString(atv.Value.FullBytes))
		}
	}
	return b.String()
}

// escapeValue escapes an attribute value as RFC 2253 section 2.4 asks.
func escapeValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case strings.IndexByte(`,+"\<>;`, c) >= 0,
			c == '#' && i == 0,
			c == ' ' && (i == 0 || i == len(s)-1):
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
