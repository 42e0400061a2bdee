package api

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates the Go code from the .proto files
// into a temporary directory and fails when it differs from what is
// committed: the API and its code must never drift apart.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("protoc is required in CI: %v", err)
		}
		t.Skipf("protoc not found (%v); install protobuf-compiler to run this test", err)
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "generate.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, b)
	}
	generated := 0
	err := filepath.WalkDir(filepath.Join(out, "api"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(out, "api"), path)
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(rel)
		if err != nil {
			t.Errorf("%s is generated but not committed: %v", rel, err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("api/%s is stale: run api/generate.sh", rel)
		}
		generated++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	committed := 0
	_ = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") && (strings.HasSuffix(path, ".pb.go") || strings.HasSuffix(path, ".connect.go")) {
			committed++
		}
		return nil
	})
	if generated == 0 || generated != committed {
		t.Fatalf("generated %d files, %d committed", generated, committed)
	}
}
