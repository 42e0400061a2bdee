package tlsconf

import (
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/cairnlog/cairn/auth"
)

// Rules map a certificate's subject name to a principal name, as Kafka's
// ssl.principal.mapping.rules do: a comma-separated list of
//
//	RULE:pattern/replacement/      the replacement, when pattern matches the whole name
//	RULE:pattern/replacement/L     the same, lower-cased
//	RULE:pattern/replacement/U     the same, upper-cased
//	DEFAULT                        the whole name
//
// tried in order; the first that matches names the principal. In a
// pattern or a replacement, \ escapes the next character (\/ is a slash);
// in a replacement $1, $2, … are the pattern's groups (Java's syntax: a
// number beyond the groups is literal text). Patterns are Go regular
// expressions, which take Kafka's documented examples unchanged; Java-only
// constructs (backreferences, lookaround) are refused when parsed.
type Rules []Rule

// Rule is one entry of Rules.
type Rule struct {
	isDefault   bool
	pattern     *regexp.Regexp // anchored at both ends: the whole name must match
	groups      int
	replacement string
	lower       bool
	upper       bool
	text        string
}

// DefaultRules is what an empty rule list means: the principal name is the
// whole subject name.
var DefaultRules = Rules{{isDefault: true, text: "DEFAULT"}}

// ErrNoRule is returned by Map when no rule matches a name.
var ErrNoRule = errors.New("no principal mapping rule matches")

// ParseRules reads a rule list; empty or blank text is DefaultRules.
func ParseRules(text string) (Rules, error) {
	rest := strings.TrimSpace(text)
	if rest == "" {
		return DefaultRules, nil
	}
	var rules Rules
	for rest != "" {
		r, after, err := parseRule(rest)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
		after = strings.TrimLeftFunc(after, unicode.IsSpace)
		if after == "" {
			break
		}
		if after[0] != ',' {
			return nil, fmt.Errorf("principal mapping rules: after %q: want a comma, found %q", r.text, after)
		}
		rest = strings.TrimLeftFunc(after[1:], unicode.IsSpace)
		if rest == "" {
			return nil, errors.New("principal mapping rules: a trailing comma")
		}
	}
	return rules, nil
}

// parseRule reads one rule at the start of s and returns what follows it.
func parseRule(s string) (Rule, string, error) {
	if rest, ok := strings.CutPrefix(s, "DEFAULT"); ok {
		return Rule{isDefault: true, text: "DEFAULT"}, rest, nil
	}
	body, ok := strings.CutPrefix(s, "RULE:")
	if !ok {
		return Rule{}, "", fmt.Errorf("principal mapping rules: invalid rule at %q: want RULE:pattern/replacement/[LU] or DEFAULT", s)
	}
	pattern, rest, ok := cutUnescaped(body, '/')
	if !ok {
		return Rule{}, "", fmt.Errorf("principal mapping rules: rule %q: no / after the pattern", s)
	}
	replacement, rest, ok := cutUnescaped(rest, '/')
	if !ok {
		return Rule{}, "", fmt.Errorf("principal mapping rules: rule %q: no / after the replacement", s)
	}
	r := Rule{replacement: replacement}
	switch {
	case strings.HasPrefix(rest, "L"):
		r.lower, rest = true, rest[1:]
	case strings.HasPrefix(rest, "U"):
		r.upper, rest = true, rest[1:]
	}
	r.text = s[:len(s)-len(rest)]
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return Rule{}, "", fmt.Errorf("principal mapping rules: rule %q: %w", r.text, err)
	}
	r.pattern, r.groups = re, re.NumSubexp()
	return r, rest, nil
}

// cutUnescaped splits s at the first sep not escaped by a backslash; the
// part before keeps its escapes.
func cutUnescaped(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// String renders the rules as parsed.
func (rs Rules) String() string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.text
	}
	return strings.Join(parts, ",")
}

// Map names the principal of the subject name dn: the first rule's
// result, or ErrNoRule (an empty result counts as no match: a principal
// has a name).
func (rs Rules) Map(dn string) (string, error) {
	for _, r := range rs {
		if name, ok := r.apply(dn); ok && name != "" {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w %q (rules %s)", ErrNoRule, dn, rs)
}

// Principal is the User principal the rules name for dn.
func (rs Rules) Principal(dn string) (auth.Principal, error) {
	name, err := rs.Map(dn)
	if err != nil {
		return auth.Principal{}, err
	}
	return auth.User(name), nil
}

// CertificatePrincipal is the principal rules name for a verified client
// certificate's subject.
func CertificatePrincipal(cert *x509.Certificate, rules Rules) (auth.Principal, error) {
	dn, err := SubjectDN(cert)
	if err != nil {
		return auth.Principal{}, err
	}
	p, err := rules.Principal(dn)
	if err != nil {
		return auth.Principal{}, fmt.Errorf("client certificate: %w", err)
	}
	return p, nil
}

func (r Rule) apply(dn string) (string, bool) {
	if r.isDefault {
		return dn, true
	}
	m := r.pattern.FindStringSubmatchIndex(dn)
	if m == nil {
		return "", false
	}
	out := expand(r.replacement, dn, m, r.groups)
	switch {
	case r.lower:
		out = strings.ToLower(out)
	case r.upper:
		out = strings.ToUpper(out)
	}
	return out, true
}

// expand writes replacement with Java's rules: \c is c, $N is group N
// (taking as many digits as still name a group), a $ not followed by a
// group number is literal.
func expand(replacement, subject string, match []int, groups int) string {
	var b strings.Builder
	for i := 0; i < len(replacement); i++ {
		c := replacement[i]
		switch {
		case c == '\\' && i+1 < len(replacement):
			i++
			b.WriteByte(replacement[i])
		case c == '$' && i+1 < len(replacement) && isDigit(replacement[i+1]) && int(replacement[i+1]-'0') <= groups:
			n := int(replacement[i+1] - '0')
			i++
			for i+1 < len(replacement) && isDigit(replacement[i+1]) {
				next := n*10 + int(replacement[i+1]-'0')
				if next > groups {
					break
				}
				n = next
				i++
			}
			if start := match[2*n]; start >= 0 {
				b.WriteString(subject[start:match[2*n+1]])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
