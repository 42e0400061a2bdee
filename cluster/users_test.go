package cluster

import (
	"errors"
	"path"
	"testing"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/storage/vfs"
)

func saltedPassword(t *testing.T, mechanism, password string, salt []byte) []byte {
	t.Helper()
	return saltedAt(t, mechanism, password, salt, sasl.IterationsMin)
}

func saltedAt(t *testing.T, mechanism, password string, salt []byte, iterations int32) []byte {
	t.Helper()
	salted, err := sasl.SaltPassword(mechanism, password, salt, iterations)
	if err != nil {
		t.Fatal(err)
	}
	return salted
}

// TestUsersSurviveRestart: a credential set through the metadata group is
// there after a restart, checks the password, and its deletion is too.
func TestUsersSurviveRestart(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	salt := []byte("saltsalt")
	if err := c.UpsertScramCredential("alice", sasl.ScramSHA512, sasl.IterationsMin, salt, saltedPassword(t, sasl.ScramSHA512, "pw", salt)); err != nil {
		t.Fatal(err)
	}
	if err := c.UpsertScramCredential("bob", sasl.ScramSHA256, sasl.IterationsMin, salt, saltedPassword(t, sasl.ScramSHA256, "pw", salt)); err != nil {
		t.Fatal(err)
	}
	if err := c.UpsertScramCredential("bad", sasl.ScramSHA256, 100, salt, saltedPassword(t, sasl.ScramSHA256, "pw", salt)); !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("100 iterations: %v, want ErrInvalidCredential", err)
	}
	if err := c.DeleteScramCredential("bob", sasl.ScramSHA256); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteScramCredential("bob", sasl.ScramSHA256); !errors.Is(err, ErrUnknownCredential) {
		t.Fatalf("second deletion: %v, want ErrUnknownCredential", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openCluster(t, fsys)
	defer c.Close()
	if users := c.Users(); len(users) != 1 || users[0].Name != "alice" || users[0].Credentials[0].Mechanism != sasl.ScramSHA512 {
		t.Fatalf("users after a restart: %+v", users)
	}
	cred, ok := c.ScramCredential("alice", sasl.ScramSHA512)
	if !ok || !cred.Verify("pw") || cred.Verify("other") {
		t.Fatalf("alice's credential after a restart: %+v %v", cred, ok)
	}
}

// TestStagedUserAppliedAtOpen: a credential staged in a stopped node's
// data directory (new or used) is in the metadata group once Open returns,
// and the staged file is gone; a running node's directory refuses staging.
func TestStagedUserAppliedAtOpen(t *testing.T) {
	fsys := vfs.NewMem()
	salt := []byte("saltsalt")
	if err := StageUser(fsys, "/data", "admin", sasl.ScramSHA512, 8192, salt, saltedAt(t, sasl.ScramSHA512, "first", salt, 8192)); err != nil {
		t.Fatal(err)
	}
	if err := StageUser(fsys, "/data", "admin", sasl.ScramSHA512, 8192, salt, saltedAt(t, sasl.ScramSHA512, "second", salt, 8192)); err != nil {
		t.Fatal(err)
	}
	if err := StageUser(fsys, "/data", "", sasl.ScramSHA512, 8192, salt, saltedAt(t, sasl.ScramSHA512, "x", salt, 8192)); !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("empty name staged: %v", err)
	}
	c := openCluster(t, fsys)
	cred, ok := c.ScramCredential("admin", sasl.ScramSHA512)
	if !ok || !cred.Verify("second") || cred.Iterations != 8192 {
		t.Fatalf("staged credential after Open: %+v %v, want the second password", cred, ok)
	}
	if _, err := fsys.Stat(path.Join("/data", StagedUsersFile)); err == nil {
		t.Fatal("the staged file outlived its application")
	}
	if err := StageUser(fsys, "/data", "other", sasl.ScramSHA512, 8192, salt, saltedAt(t, sasl.ScramSHA512, "x", salt, 8192)); !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("staging in a running node's directory: %v, want ErrLocked", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := StageUser(fsys, "/data", "other", sasl.ScramSHA256, 8192, salt, saltedAt(t, sasl.ScramSHA256, "y", salt, 8192)); err != nil {
		t.Fatal(err)
	}
	c = openCluster(t, fsys)
	defer c.Close()
	if users := c.Users(); len(users) != 2 {
		t.Fatalf("users %+v, want admin and other", users)
	}
}
