package controller

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/storage/vfs"
)

// Names of a legacy single node's metadata files in its data directory.
// Part of the on-disk format.
const (
	LegacyClusterFile = "cluster.json"
	LegacyTopicsFile  = "topics.json"
)

// ErrNoLegacy: the data directory has no cluster.json to migrate.
var ErrNoLegacy = errors.New("controller: no legacy cluster.json")

// MigrateLegacyDir reads the cluster.json and topics.json a single node
// left in dataDir and returns the state its one-voter meta group starts
// from (meta.MigrateLegacy at the bootstrap index): Config.Bootstrap, with
// the identity created from its cluster id. ErrNoLegacy when there is no
// cluster.json. The files are left in place: a crash before the meta log
// is bootstrapped migrates them again, identically.
func MigrateLegacyDir(fsys vfs.FS, dataDir string, self *metav1.Broker) (*metav1.State, error) {
	clusterJSON, err := vfs.ReadFile(fsys, filepath.Join(dataDir, LegacyClusterFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoLegacy, dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("controller: read %s: %w", LegacyClusterFile, err)
	}
	topicsJSON, err := vfs.ReadFile(fsys, filepath.Join(dataDir, LegacyTopicsFile))
	if errors.Is(err, fs.ErrNotExist) {
		topicsJSON = nil // no topic was ever created
	} else if err != nil {
		return nil, fmt.Errorf("controller: read %s: %w", LegacyTopicsFile, err)
	}
	st, err := meta.MigrateLegacy(clusterJSON, topicsJSON, self, bootstrapIndex)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	return st, nil
}
