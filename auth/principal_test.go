package auth

import (
	"context"
	"testing"
)

func TestParsePrincipal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Principal
		bad  bool
	}{
		{in: "User:alice", want: User("alice")},
		{in: "User:CN=a,O=b:c", want: User("CN=a,O=b:c")},
		{in: "Group:ops", want: Principal{Type: "Group", Name: "ops"}},
		{in: "alice", bad: true},
		{in: ":alice", bad: true},
		{in: "User:", bad: true},
	} {
		got, err := ParsePrincipal(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParsePrincipal(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePrincipal(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, _ := ParsePrincipal(got.String()); back != got {
			t.Errorf("%v does not survive String/Parse: %v", got, back)
		}
	}
}

func TestContext(t *testing.T) {
	if p := FromContext(context.Background()); !p.IsAnonymous() {
		t.Fatalf("empty context: %v, want anonymous", p)
	}
	ctx := WithPrincipal(context.Background(), User("bob"))
	if p := FromContext(ctx); p != User("bob") || p.IsAnonymous() {
		t.Fatalf("FromContext = %v, want User:bob", p)
	}
}
