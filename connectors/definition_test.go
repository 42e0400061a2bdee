package connectors

import "testing"

func TestRedactDSN(t *testing.T) {
	cases := map[string]string{
		"postgres://u:secret@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db?password=secret":             "postgres://u@h/db?password=xxxxx",
		"host=h user=u password=secret dbname=d":        "host=h user=u password=xxxxx dbname=d",
		"host=h password='se cret' dbname=d":            "host=h password=xxxxx dbname=d",
		"postgres://u@h/db":                             "postgres://u@h/db",
	}
	for in, want := range cases {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefinitionsApply(t *testing.T) {
	ds := Definitions{}
	d := Definition{Name: "a", Type: TypePostgres, DSN: "postgres://h/db"}
	if err := ds.apply([]byte("a"), encode(d)); err != nil || ds["a"].DSN != d.DSN {
		t.Fatalf("apply: %v %+v", err, ds)
	}
	if err := ds.apply([]byte("b"), encode(d)); err == nil {
		t.Fatal("a definition under another name's key was taken")
	}
	if err := ds.apply([]byte("a"), []byte(`{"version":9,"name":"a"}`)); err == nil {
		t.Fatal("an unknown definition version was taken")
	}
	if err := ds.apply([]byte("a"), nil); err != nil || len(ds) != 0 {
		t.Fatalf("tombstone: %v %+v", err, ds)
	}
	if err := (Definition{Name: "x", Type: "mysql", DSN: "d"}).Validate(); err == nil {
		t.Fatal("an unknown type validated")
	}
}
