package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, fsys FS, name string, data []byte, sync bool) File {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, data)
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func content(t *testing.T, fsys FS, name string) []byte {
	t.Helper()
	data, err := ReadFile(fsys, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return data
}

func mustNotExist(t *testing.T, fsys FS, name string) {
	t.Helper()
	if _, err := fsys.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists after crash (err %v)", name, err)
	}
}

// TestCrashKeepsOnlySyncedData proves that file data survives a crash only up
// to the last File.Sync.
func TestCrashKeepsOnlySyncedData(t *testing.T) {
	c := NewCrashFS()
	_ = c.MkdirAll("d")
	_ = c.SyncDir(".")
	f := writeFile(t, c, "d/a", []byte("synced"), true)
	mustWrite(t, f, []byte(" lost"))
	_ = c.SyncDir("d")

	after := c.Crash(CrashOptions{})
	if got := content(t, after, "d/a"); string(got) != "synced" {
		t.Fatalf("after crash %q, want %q", got, "synced")
	}
	// The old filesystem is unchanged by the crash.
	if got := content(t, c, "d/a"); string(got) != "synced lost" {
		t.Fatalf("original %q", got)
	}
}

// TestCrashDropsEntriesNotSyncedInDirectory proves that creates, renames and
// removals survive a crash only after SyncDir of their directory, and that a
// directory made by MkdirAll needs SyncDir of its parent.
func TestCrashDropsEntriesNotSyncedInDirectory(t *testing.T) {
	c := NewCrashFS()
	_ = c.MkdirAll("d")
	_ = c.SyncDir(".")
	writeFile(t, c, "d/kept", []byte("k"), true).Close()
	writeFile(t, c, "d/removed", []byte("r"), true).Close()
	writeFile(t, c, "d/renamed", []byte("n"), true).Close()
	_ = c.SyncDir("d")

	writeFile(t, c, "d/created", []byte("c"), true).Close() // synced data, entry not synced
	_ = c.Remove("d/removed")
	_ = c.Rename("d/renamed", "d/renamed-to")
	_ = c.MkdirAll("e")
	writeFile(t, c, "e/x", []byte("x"), true).Close()
	_ = c.SyncDir("e") // e itself is not durable in the root yet

	after := c.Crash(CrashOptions{})
	names, err := after.List("d")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kept", "removed", "renamed"}; !slices.Equal(names, want) {
		t.Fatalf("entries after crash %v, want %v", names, want)
	}
	mustNotExist(t, after, "e")

	_ = c.SyncDir("d")
	_ = c.SyncDir(".")
	after = c.Crash(CrashOptions{})
	names, _ = after.List("d")
	if want := []string{"created", "kept", "renamed-to"}; !slices.Equal(names, want) {
		t.Fatalf("entries after SyncDir and crash %v, want %v", names, want)
	}
	if got := content(t, after, "e/x"); string(got) != "x" {
		t.Fatalf("e/x = %q", got)
	}
}

// TestCrashResultCanCrashAgain proves the filesystem a crash returns holds
// everything durably and tracks new work like the original.
func TestCrashResultCanCrashAgain(t *testing.T) {
	c := NewCrashFS()
	writeFile(t, c, "a", []byte("one"), true).Close()
	_ = c.SyncDir("/")
	first := c.Crash(CrashOptions{})
	f, err := first.OpenAppend("a")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte(" two"))
	second := first.Crash(CrashOptions{})
	if got := content(t, second, "a"); string(got) != "one" {
		t.Fatalf("after second crash %q", got)
	}
}

// TestCrashTearsUnsyncedTails proves TearUnsynced leaves the synced bytes
// followed by a prefix of the unsynced ones, sometimes all, sometimes none,
// sometimes with garbage after them.
func TestCrashTearsUnsyncedTails(t *testing.T) {
	synced := []byte("durable-part|")
	unsynced := bytes.Repeat([]byte("u"), 100)
	var sawNone, sawPartial, sawAll, sawGarbage bool
	for seed := range uint64(200) {
		c := NewCrashFS()
		f := writeFile(t, c, "a", synced, true)
		mustWrite(t, f, unsynced)
		_ = c.SyncDir(".")
		got := content(t, c.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 1)), TearUnsynced: true}), "a")
		if !bytes.HasPrefix(got, synced) {
			t.Fatalf("seed %d: synced prefix lost: %q", seed, got)
		}
		tail := got[len(synced):]
		kept := 0
		for kept < len(tail) && kept < len(unsynced) && tail[kept] == 'u' {
			kept++
		}
		if kept < len(tail) {
			sawGarbage = true
			if len(tail)-kept > garbageBytesMax {
				t.Fatalf("seed %d: %d garbage bytes", seed, len(tail)-kept)
			}
		}
		switch kept {
		case 0:
			sawNone = true
		case len(unsynced):
			sawAll = true
		default:
			sawPartial = true
		}
	}
	if !sawNone || !sawPartial || !sawAll || !sawGarbage {
		t.Fatalf("torn outcomes none=%v partial=%v all=%v garbage=%v", sawNone, sawPartial, sawAll, sawGarbage)
	}
}

// TestCrashAfterUnsyncedTruncate proves a truncation not followed by Sync
// either vanishes or holds, and that without tearing the synced content returns.
func TestCrashAfterUnsyncedTruncate(t *testing.T) {
	c := NewCrashFS()
	f := writeFile(t, c, "a", []byte("0123456789"), true)
	_ = c.SyncDir(".")
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte("ab"))
	if got := content(t, c.Crash(CrashOptions{}), "a"); string(got) != "0123456789" {
		t.Fatalf("untorn crash %q", got)
	}
	outcomes := map[string]bool{}
	for seed := range uint64(100) {
		got := content(t, c.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 2)), TearUnsynced: true}), "a")
		outcomes[string(got)] = true
	}
	for outcome := range outcomes {
		untorn := outcome == "0123456789"
		truncated := strings.HasPrefix(outcome, "0123") && len(outcome) <= len("0123ab")+garbageBytesMax
		if !untorn && !truncated {
			t.Fatalf("impossible outcome %q", outcome)
		}
	}
	if !outcomes["0123456789"] {
		t.Fatal("the untorn outcome never appeared")
	}
}

// TestCrashSyncedTruncateHolds proves a synced truncation is durable.
func TestCrashSyncedTruncateHolds(t *testing.T) {
	c := NewCrashFS()
	f := writeFile(t, c, "a", []byte("0123456789"), true)
	_ = c.SyncDir(".")
	_ = f.Truncate(3)
	_ = f.Sync()
	mustWrite(t, f, []byte("xyz"))
	_ = f.Sync()
	if got := content(t, c.Crash(CrashOptions{}), "a"); string(got) != "012xyz" {
		t.Fatalf("after crash %q", got)
	}
}

// TestCrashSameSeedSameOutcome proves a torn crash is a function of the
// filesystem and the seed: crashing the same state twice with one seed leaves
// the same bytes in every file, so a failing crash test's -seed reproduces it.
func TestCrashSameSeedSameOutcome(t *testing.T) {
	c := NewCrashFS()
	var names []string
	for dir := range 4 {
		d := fmt.Sprintf("d%d", dir)
		_ = c.MkdirAll(d)
		for file := range 8 {
			name := fmt.Sprintf("%s/f%d", d, file)
			f := writeFile(t, c, name, []byte("synced|"), true)
			mustWrite(t, f, bytes.Repeat([]byte{byte('a' + file)}, 64))
			names = append(names, name)
		}
		_ = c.SyncDir(d)
	}
	_ = c.SyncDir(".")
	const seed = 42
	crash := func() *CrashFS {
		return c.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 1)), TearUnsynced: true})
	}
	first, second := crash(), crash()
	for _, name := range names {
		if a, b := content(t, first, name), content(t, second, name); !bytes.Equal(a, b) {
			t.Fatalf("seed %d tore %s differently: %q then %q", seed, name, a, b)
		}
	}
}
