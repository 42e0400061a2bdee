package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/storage/vfs"
)

// StagedUsersFile holds SCRAM credentials staged in a stopped node's data
// directory (StageUser) for Open to propose to the metadata group: how the
// first user of a cluster that requires SASL exists before any client can
// authenticate. Part of the on-disk format: JSON, stagedUsers below,
// written atomically; removed by the Open that proposed every entry.
const StagedUsersFile = "users.staged"

// stagedUsersVersion is the version of the file's layout.
const stagedUsersVersion = 1

// stagedUsersMax bounds the credentials one file may stage.
const stagedUsersMax = 1000

type stagedUsers struct {
	Version     int                `json:"version"`
	Credentials []stagedCredential `json:"credentials"`
}

// stagedCredential is a credential as the metadata group keeps it: the
// keys derived from the password, never the password.
type stagedCredential struct {
	User       string `json:"user"`
	Mechanism  string `json:"mechanism"`
	Salt       []byte `json:"salt"`
	Iterations int32  `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// StageUser stages user's credential for mechanism in the data directory
// of a stopped node (it takes the directory's lock, so a running node
// refuses it): the next start proposes it before the Kafka listener
// serves. A directory that does not exist yet is created, so the first
// user can be staged before the first start. Staging the same user and
// mechanism again replaces the staged credential.
func StageUser(fsys vfs.FS, dataDir, user, mechanism string, iterations int32, salt, saltedPassword []byte) error {
	cred, err := sasl.NewCredential(mechanism, salt, saltedPassword, iterations)
	if err != nil {
		return fmt.Errorf("%w: user %q: %v", ErrInvalidCredential, user, err)
	}
	if err := checkStagedName(user); err != nil {
		return err
	}
	if err := createDataDir(fsys, dataDir); err != nil {
		return err
	}
	lock, err := lockDataDir(fsys, dataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	name := path.Join(dataDir, StagedUsersFile)
	staged, err := readStagedUsers(fsys, name)
	if err != nil {
		return err
	}
	entry := stagedCredential{User: user, Mechanism: mechanism, Salt: cred.Salt, Iterations: cred.Iterations,
		StoredKey: cred.StoredKey, ServerKey: cred.ServerKey}
	at := slices.IndexFunc(staged.Credentials, func(c stagedCredential) bool { return c.User == user && c.Mechanism == mechanism })
	if at >= 0 {
		staged.Credentials[at] = entry
	} else {
		if len(staged.Credentials) >= stagedUsersMax {
			return fmt.Errorf("%s holds %d credentials already: start the node to apply them", name, len(staged.Credentials))
		}
		staged.Credentials = append(staged.Credentials, entry)
	}
	data, err := json.MarshalIndent(staged, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := vfs.WriteFileAtomic(fsys, name, data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// checkStagedName refuses a name the metadata group would refuse, before
// it is staged rather than at the next start.
func checkStagedName(user string) error {
	if user == "" || len(user) > sasl.NameBytesMax || !utf8.ValidString(user) ||
		strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: user name %q: 1 to %d bytes of UTF-8 without control characters", ErrInvalidCredential, user, sasl.NameBytesMax)
	}
	return nil
}

// readStagedUsers reads the staged credentials; a missing file stages none.
func readStagedUsers(fsys vfs.FS, name string) (stagedUsers, error) {
	staged := stagedUsers{Version: stagedUsersVersion}
	data, err := vfs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return staged, nil
	}
	if err != nil {
		return staged, fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(data, &staged); err != nil {
		return staged, fmt.Errorf("decode %s: %w", name, err)
	}
	if staged.Version != stagedUsersVersion || len(staged.Credentials) > stagedUsersMax {
		return staged, fmt.Errorf("%s: version %d with %d credentials; this version reads %d with at most %d",
			name, staged.Version, len(staged.Credentials), stagedUsersVersion, stagedUsersMax)
	}
	return staged, nil
}

// applyStagedUsers proposes the staged credentials, then removes the file.
// A crash in between proposes them again at the next start, which gives
// the same state: an upsert of the same credential.
func (c *Cluster) applyStagedUsers() error {
	name := path.Join(c.cfg.DataDir, StagedUsersFile)
	staged, err := readStagedUsers(c.env.FS, name)
	if err != nil || len(staged.Credentials) == 0 {
		return err
	}
	for _, s := range staged.Credentials {
		cmd := &metav1.UpsertScramCredential{User: s.User, Credential: &metav1.ScramCredential{
			Mechanism: s.Mechanism, Salt: s.Salt, Iterations: s.Iterations, StoredKey: s.StoredKey, ServerKey: s.ServerKey}}
		if _, err := c.propose(&metav1.Command{Command: &metav1.Command_UpsertScramCredential{UpsertScramCredential: cmd}}); err != nil {
			return fmt.Errorf("apply the credential of %q staged in %s: %w", s.User, name, err)
		}
		c.env.Logger.Info("staged user credential applied", "user", s.User, "mechanism", s.Mechanism)
	}
	if err := c.env.FS.Remove(name); err != nil {
		return fmt.Errorf("remove the applied %s: %w", name, err)
	}
	if err := c.env.FS.SyncDir(c.cfg.DataDir); err != nil {
		return fmt.Errorf("remove the applied %s: %w", name, err)
	}
	return nil
}
