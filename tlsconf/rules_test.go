package tlsconf

import (
	"errors"
	"testing"
)

// Kafka's documentation of ssl.principal.mapping.rules, and the cases of
// its mapper's tests, give these rules and names.
const kafkaDocRules = `RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,
RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,
RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,
DEFAULT`

func TestRulesMap(t *testing.T) {
	for _, tc := range []struct {
		rules, dn, want string
	}{
		{kafkaDocRules, "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", "serviceuser"},
		{kafkaDocRules, "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", "adminuser@admin"},
		{kafkaDocRules, "CN=xxx.example.com,OU=Engineering,O=Example", "xxx.example.com"},
		{kafkaDocRules, "OU=JavaSoft,O=Sun Microsystems,C=US", "OU=JavaSoft,O=Sun Microsystems,C=US"},
		{"", "CN=a,O=b", "CN=a,O=b"},
		{"DEFAULT", "CN=a,O=b", "CN=a,O=b"},
		{`RULE:^CN=(.*?),OU=(.*?)$/$1/U`, "CN=duke,OU=JavaSoft", "DUKE"},
		{`RULE:^CN=(.*?),OU=(.*?)$/$2\/$1/`, "CN=duke,OU=JavaSoft", "JavaSoft/duke"},
		{`RULE:^CN=(.*?),OU=(.*?)$/$1$2/`, "CN=duke,OU=JavaSoft", "dukeJavaSoft"},
		// A number beyond the groups is literal, and so is $ before a letter.
		{`RULE:^CN=(.*?)$/$1-$9-$x/`, "CN=duke", "duke-$9-$x"},
		// $12 with one group is group 1 then "2", as in Java.
		{`RULE:^CN=(.*?)$/$12/`, "CN=duke", "duke2"},
		// A pattern with an escaped slash, and the whole name must match.
		{`RULE:^CN=a\/b$/slash/, RULE:CN=a/prefix/, DEFAULT`, "CN=a/b", "slash"},
		{`RULE:CN=a/prefix/, DEFAULT`, "CN=ab", "CN=ab"},
		// Spaces and newlines around the separating commas.
		{"  RULE:^CN=(.*)$/$1/L ,\n\tDEFAULT  ", "CN=Bob", "bob"},
	} {
		rules, err := ParseRules(tc.rules)
		if err != nil {
			t.Fatalf("ParseRules(%q): %v", tc.rules, err)
		}
		got, err := rules.Map(tc.dn)
		if err != nil || got != tc.want {
			t.Errorf("rules %q on %q = %q, %v; want %q", tc.rules, tc.dn, got, err, tc.want)
		}
	}
}

func TestRulesNoMatch(t *testing.T) {
	rules, err := ParseRules(`RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/`)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rules.Map("CN=x,OU=Other"); !errors.Is(err, ErrNoRule) {
		t.Fatalf("Map = %q, %v; want ErrNoRule", got, err)
	}
	// A rule whose result is empty does not name a principal.
	rules, _ = ParseRules(`RULE:^CN=(.*)$//`)
	if got, err := rules.Map("CN=x"); !errors.Is(err, ErrNoRule) {
		t.Fatalf("empty result: Map = %q, %v; want ErrNoRule", got, err)
	}
}

func TestRulesInvalid(t *testing.T) {
	for _, text := range []string{
		"DEFAULT, RULE:",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/LU",
		"DEFAULT,",
		"DEFAULTS",
		"rule:^CN=(.*)$/$1/",
		`RULE:^CN=(.*?)(?=x)$/$1/`, // lookahead: Java only
	} {
		if rules, err := ParseRules(text); err == nil {
			t.Errorf("ParseRules(%q) = %v, want an error", text, rules)
		}
	}
}

func TestRulesString(t *testing.T) {
	rules, err := ParseRules(kafkaDocRules)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 4 {
		t.Fatalf("%d rules, want 4: %v", len(rules), rules)
	}
	again, err := ParseRules(rules.String())
	if err != nil || again.String() != rules.String() {
		t.Fatalf("String does not parse back: %q, %v", again, err)
	}
}
