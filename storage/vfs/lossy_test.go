package vfs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// reopenLossy closes handles and opens root again: in memory, exactly what
// a kill of the process loses.
func reopenLossy(t *testing.T, root string, handles ...File) *LossyFS {
	t.Helper()
	for _, h := range handles {
		_ = h.Close()
	}
	l, err := NewLossyFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLossyKeepsWhatIsDurable walks through the cases CrashFS defines: data
// after the last Sync, entries created, renamed or removed since the last
// SyncDir, a truncation never synced, and a directory synced before its
// parent.
func TestLossyKeepsWhatIsDurable(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	l := reopenLossy(t, root)
	at := func(name string) string { return filepath.Join(root, name) }
	_ = l.MkdirAll(at("d"))
	_ = l.SyncDir(root)
	log := writeFile(t, l, at("d/log"), []byte("synced"), true)
	mustWrite(t, log, []byte(" lost"))
	if got := content(t, l, at("d/log")); string(got) != "synced lost" {
		t.Fatalf("before the kill %q: reads must see unsynced writes", got)
	}
	old := writeFile(t, l, at("d/old"), []byte("old"), true)
	removed := writeFile(t, l, at("d/removed"), []byte("removed"), true)
	cut := writeFile(t, l, at("d/cut"), []byte("whole"), true)
	if err := l.SyncDir(at("d")); err != nil {
		t.Fatal(err)
	}
	if err := cut.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if err := l.Rename(at("d/old"), at("d/new")); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(at("d/removed")); err != nil {
		t.Fatal(err)
	}
	fresh := writeFile(t, l, at("d/fresh"), []byte("never linked"), true)
	_ = l.MkdirAll(at("d/sub"))
	inner := writeFile(t, l, at("d/sub/inner"), []byte("inner"), true)
	if err := l.SyncDir(at("d/sub")); err != nil {
		t.Fatal(err)
	}

	after := reopenLossy(t, root, log, old, removed, cut, fresh, inner)
	if got := content(t, after, at("d/log")); string(got) != "synced" {
		t.Fatalf("d/log after the kill %q, want %q", got, "synced")
	}
	if got := content(t, after, at("d/cut")); string(got) != "whole" {
		t.Fatalf("d/cut after the kill %q: the truncation was never synced", got)
	}
	if got := content(t, after, at("d/old")); string(got) != "old" {
		t.Fatalf("d/old after the kill %q: the rename was never synced", got)
	}
	if got := content(t, after, at("d/removed")); string(got) != "removed" {
		t.Fatalf("d/removed after the kill %q: the removal was never synced", got)
	}
	mustNotExist(t, after, at("d/new"))
	mustNotExist(t, after, at("d/fresh"))
	mustNotExist(t, after, at("d/sub"))

	// Syncing the parent brings the subdirectory with what was synced in it.
	_ = after.MkdirAll(at("d/sub"))
	inner = writeFile(t, after, at("d/sub/inner"), []byte("inner"), true)
	if err := after.SyncDir(at("d/sub")); err != nil {
		t.Fatal(err)
	}
	if err := after.SyncDir(at("d")); err != nil {
		t.Fatal(err)
	}
	again := reopenLossy(t, root, inner)
	if got := content(t, again, at("d/sub/inner")); string(got) != "inner" {
		t.Fatalf("d/sub/inner %q, want it durable with its directory", got)
	}
}

// TestLossyMatchesCrashFS runs random operations on a CrashFS and a LossyFS
// side by side, killing both now and then (CrashFS.Crash, a reopen of the
// LossyFS), and requires the same tree and contents throughout: the LossyFS
// keeps on disk exactly what the in-memory model says a power cut keeps.
func TestLossyMatchesCrashFS(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runLossyModel(t, seed) })
	}
}

type handlePair struct{ model, lossy File }

func runLossyModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	root := filepath.Join(t.TempDir(), "root")
	lossy := reopenLossy(t, root)
	model := NewCrashFS()
	dirs := []string{"", "a", "a/b", "c"}
	files := []string{"x", "y", "z"}
	handles := map[string]handlePair{}
	pick := func() string {
		return path.Join(dirs[rng.IntN(len(dirs))], files[rng.IntN(len(files))])
	}
	both := func(op string, name string, do func(fsys FS, at string) error) {
		t.Helper()
		errModel := do(model, path.Join("/", name))
		errLossy := do(lossy, filepath.Join(root, name))
		t.Logf("%s %s: %v", op, name, errModel)
		if (errModel == nil) != (errLossy == nil) {
			t.Fatalf("%s %s: model %v, lossy %v", op, name, errModel, errLossy)
		}
	}
	for step := range 400 {
		switch op := rng.IntN(10); op {
		case 0:
			dir := dirs[1+rng.IntN(len(dirs)-1)]
			both("mkdir", dir, func(fsys FS, at string) error { return fsys.MkdirAll(at) })
		case 1:
			name := pick()
			var pair handlePair
			var errs [2]error
			pair.model, errs[0] = model.Create(path.Join("/", name))
			pair.lossy, errs[1] = lossy.Create(filepath.Join(root, name))
			if (errs[0] == nil) != (errs[1] == nil) {
				t.Fatalf("step %d create %s: model %v, lossy %v", step, name, errs[0], errs[1])
			}
			t.Logf("create %s: %v", name, errs[0])
			if errs[0] == nil {
				handles[name+fmt.Sprint(step)] = pair
			}
		case 2, 3, 4:
			if len(handles) == 0 {
				continue
			}
			keys := slices.Sorted(maps.Keys(handles))
			key := keys[rng.IntN(len(keys))]
			pair := handles[key]
			switch rng.IntN(4) {
			case 0, 1:
				t.Logf("write %s", key)
				data := make([]byte, 1+rng.IntN(64))
				for i := range data {
					data[i] = byte('a' + rng.IntN(26))
				}
				mustWrite(t, pair.model, data)
				mustWrite(t, pair.lossy, data)
			case 2:
				t.Logf("sync %s", key)
				if err := pair.model.Sync(); err != nil {
					t.Fatal(err)
				}
				if err := pair.lossy.Sync(); err != nil {
					t.Fatal(err)
				}
			case 3:
				size, _ := pair.model.Size()
				cut := rng.Int64N(size + 8)
				t.Logf("truncate %s to %d", key, cut)
				_ = pair.model.Truncate(cut)
				if err := pair.lossy.Truncate(cut); err != nil {
					t.Fatal(err)
				}
			}
		case 5:
			from, to := pick(), pick()
			errModel := model.Rename(path.Join("/", from), path.Join("/", to))
			errLossy := lossy.Rename(filepath.Join(root, from), filepath.Join(root, to))
			t.Logf("rename %s %s: %v", from, to, errModel)
			if (errModel == nil) != (errLossy == nil) {
				t.Fatalf("step %d rename %s %s: model %v, lossy %v", step, from, to, errModel, errLossy)
			}
		case 6:
			both("remove", pick(), func(fsys FS, at string) error { return fsys.Remove(at) })
		case 7:
			dir := dirs[1+rng.IntN(len(dirs)-1)]
			if rng.IntN(3) == 0 {
				both("removeall", dir, func(fsys FS, at string) error { return fsys.RemoveAll(at) })
			}
		case 8:
			dir := dirs[rng.IntN(len(dirs))]
			both("syncdir", dir, func(fsys FS, at string) error { return fsys.SyncDir(at) })
		case 9:
			if rng.IntN(4) != 0 {
				continue
			}
			for _, pair := range handles {
				_ = pair.lossy.Close()
			}
			clear(handles)
			t.Logf("kill")
			model = model.Crash(CrashOptions{})
			lossy = reopenLossy(t, root)
		}
		compareTrees(t, step, model, lossy, root)
		compareWindows(t, rng, step, handles)
	}
}

// compareWindows reads the same random window through each open pair of
// handles: reads that start or end anywhere, synced part or not.
func compareWindows(t *testing.T, rng *rand.Rand, step int, handles map[string]handlePair) {
	t.Helper()
	for _, key := range slices.Sorted(maps.Keys(handles)) {
		pair := handles[key]
		size, err := pair.model.Size()
		if err != nil {
			t.Fatal(err)
		}
		off := rng.Int64N(size + 2)
		want := make([]byte, rng.IntN(int(size)+4))
		got := make([]byte, len(want))
		nWant, errWant := pair.model.ReadAt(want, off)
		nGot, errGot := pair.lossy.ReadAt(got, off)
		if nWant != nGot || (errWant == nil) != (errGot == nil) || string(want[:nWant]) != string(got[:nGot]) {
			t.Fatalf("step %d: %s ReadAt(%d bytes, %d): model %d %v %q, lossy %d %v %q",
				step, key, len(want), off, nWant, errWant, want[:nWant], nGot, errGot, got[:nGot])
		}
	}
}

// compareTrees requires the same entries and file contents under both roots.
func compareTrees(t *testing.T, step int, model FS, lossy FS, root string) {
	t.Helper()
	want, got := dumpTree(t, model, "/", ""), dumpTree(t, lossy, root, "")
	if !maps.Equal(want, got) {
		t.Fatalf("step %d: trees differ\nmodel %v\nlossy %v", step, want, got)
	}
}

func dumpTree(t *testing.T, fsys FS, at, rel string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	names, err := fsys.List(at)
	if err != nil {
		t.Fatalf("list %s: %v", at, err)
	}
	for _, name := range names {
		child := path.Join(at, name)
		if _, err := fsys.List(child); err == nil {
			tree[rel+name+"/"] = ""
			maps.Copy(tree, dumpTree(t, fsys, child, rel+name+"/"))
			continue
		}
		tree[rel+name] = string(content(t, fsys, child))
	}
	return tree
}

// lossyChildEnv names the root a re-executed test binary works in.
const lossyChildEnv = "CAIRN_TEST_LOSSY_CHILD"

// TestLossyKilledProcess kills a process with SIGKILL in the middle of its
// work and reads its directory back from the disk: what it synced is there,
// what it did not sync is gone.
func TestLossyKilledProcess(t *testing.T) {
	if root := os.Getenv(lossyChildEnv); root != "" {
		lossyChild(root)
		return
	}
	root := filepath.Join(t.TempDir(), "root")
	child := exec.Command(os.Args[0], "-test.run=^TestLossyKilledProcess$")
	child.Env = append(os.Environ(), lossyChildEnv+"="+root)
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = child.Process.Kill()
		_ = child.Wait()
		t.Fatalf("child said %q, %v", line, err)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	// The disk itself, read without a LossyFS.
	if got, err := os.ReadFile(filepath.Join(root, "log")); err != nil || string(got) != "synced " {
		t.Fatalf("log on disk %q, %v; want %q", got, err, "synced ")
	}
	if got, err := os.ReadFile(filepath.Join(root, "state")); err != nil || string(got) != "v1" {
		t.Fatalf("state on disk %q, %v; want %q", got, err, "v1")
	}
	if _, err := os.Stat(filepath.Join(root, "unlinked")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unlinked on disk: %v, want missing (its directory was never synced)", err)
	}
	after := reopenLossy(t, root)
	names, err := after.List(root)
	if err != nil || !slices.Equal(names, []string{"log", "state"}) {
		t.Fatalf("after the kill %v, %v; want [log state]", names, err)
	}
}

// lossyChild is the killed process: it syncs some writes, leaves others in
// memory, says so and waits for the signal.
func lossyChild(root string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "lossy child:", err)
		os.Exit(2)
	}
	l, err := NewLossyFS(root)
	if err != nil {
		fail(err)
	}
	at := func(name string) string { return filepath.Join(root, name) }
	log, err := l.Create(at("log"))
	if err != nil {
		fail(err)
	}
	if err := l.SyncDir(root); err != nil {
		fail(err)
	}
	for _, step := range []struct {
		data string
		sync bool
	}{{"synced ", true}, {"unsynced", false}} {
		if _, err := log.Write([]byte(step.data)); err != nil {
			fail(err)
		}
		if step.sync {
			if err := log.Sync(); err != nil {
				fail(err)
			}
		}
	}
	if err := WriteFileAtomic(l, at("state"), []byte("v1")); err != nil {
		fail(err)
	}
	// v2 is synced as a file but its rename over state is never made durable.
	temp, err := l.Create(at("state.tmp"))
	if err == nil {
		_, err = temp.Write([]byte("v2"))
	}
	if err == nil {
		err = temp.Sync()
	}
	if err == nil {
		err = l.Rename(at("state.tmp"), at("state"))
	}
	if err != nil {
		fail(err)
	}
	unlinked, err := l.Create(at("unlinked"))
	if err == nil {
		_, err = unlinked.Write([]byte("data"))
	}
	if err == nil {
		err = unlinked.Sync()
	}
	if err != nil {
		fail(err)
	}
	if got, err := ReadFile(l, at("log")); err != nil || string(got) != "synced unsynced" {
		fail(fmt.Errorf("read-your-writes: log holds %q, %v", got, err))
	}
	fmt.Println("ready")
	// Killed long before; the bound only keeps an orphan from lingering.
	time.Sleep(time.Minute)
	os.Exit(3)
}
