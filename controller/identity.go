package controller

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/storage/vfs"
)

// NodeFileName is the identity file at the root of a node's data directory.
const NodeFileName = "node.json"

// nodeFileVersion is node.json's layout version as this code writes it:
// 2 added registration_nonce. Version 1 files are still read (their nonce
// is empty: such a node registered before nonces existed).
const nodeFileVersion = 2

// nonceBytes is the length of the registration nonce a new node draws.
const nonceBytes = 16

// ErrIdentityMismatch: the data directory belongs to another node or
// cluster than the flags name; starting would let one node's log vote as
// another's.
var ErrIdentityMismatch = errors.New("controller: data directory belongs to another identity")

// ErrNoIdentity: node.json is missing and no cluster id was given to
// create it with (a single node draws one with NewClusterID, or takes a
// legacy cluster.json's).
var ErrNoIdentity = errors.New("controller: no node.json")

// Identity is who a node is (design §5.4), as node.json records it:
//
//	{"version": 2, "cluster_id": "…", "node_id": 3, "incarnation": 1,
//	 "registration_nonce": "base64…"}
type Identity struct {
	Version     int    `json:"version"`
	ClusterID   string `json:"cluster_id"`
	NodeID      int32  `json:"node_id"`
	Incarnation uint32 `json:"incarnation"`
	// Nonce is drawn once when the node first starts and sent with every
	// RegisterBroker made for it, so that a registration retried after
	// its answer was lost gets the same incarnation, not another one.
	Nonce []byte `json:"registration_nonce,omitempty"`
	// New is true when there was no node.json: the node is new, and only
	// a new node may bootstrap a meta log. Open writes node.json once the
	// meta log is bootstrapped.
	New bool `json:"-"`
}

// ReplicaID is the node's replica id in every group: node id << 20 |
// incarnation.
func (id Identity) ReplicaID() uint64 { return meta.ReplicaID(id.NodeID, id.Incarnation) }

// OpenIdentity reads <dataDir>/node.json, or returns a new node's identity
// (incarnation 1, New) that Open writes after bootstrapping the meta log:
// node.json on disk means the log was bootstrapped, so a node that crashed
// in between starts again as new. An existing file must name nodeID and,
// when clusterID is not empty, clusterID: a node restarted with another
// node's directory, or a directory of another cluster, refuses to start.
func OpenIdentity(fsys vfs.FS, dataDir string, nodeID int32, clusterID string) (Identity, error) {
	if nodeID < 1 || nodeID > meta.NodeIDMax {
		return Identity{}, fmt.Errorf("controller: node id %d out of range", nodeID)
	}
	name := filepath.Join(dataDir, NodeFileName)
	data, err := vfs.ReadFile(fsys, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if clusterID == "" {
			return Identity{}, fmt.Errorf("%w in %s", ErrNoIdentity, dataDir)
		}
		return Identity{Version: nodeFileVersion, ClusterID: clusterID, NodeID: nodeID, Incarnation: 1, New: true}, nil
	case err != nil:
		return Identity{}, fmt.Errorf("controller: read %s: %w", name, err)
	}
	id, err := decodeIdentity(data)
	if err != nil {
		return Identity{}, fmt.Errorf("controller: %s: %w", name, err)
	}
	if err := id.check(nodeID, clusterID); err != nil {
		return Identity{}, fmt.Errorf("controller: %s: %w", name, err)
	}
	return id, nil
}

// writeIdentity writes node.json atomically.
func writeIdentity(fsys vfs.FS, dataDir string, id Identity) error {
	data, err := json.Marshal(id)
	if err != nil {
		return fmt.Errorf("controller: encode %s: %w", NodeFileName, err)
	}
	if err := fsys.MkdirAll(dataDir); err != nil {
		return fmt.Errorf("controller: create %s: %w", dataDir, err)
	}
	if err := vfs.WriteFileAtomic(fsys, filepath.Join(dataDir, NodeFileName), data); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	return nil
}

// decodeIdentity parses node.json and checks it on its own.
func decodeIdentity(data []byte) (Identity, error) {
	var id Identity
	if err := json.Unmarshal(data, &id); err != nil {
		return Identity{}, fmt.Errorf("decode: %w", err)
	}
	switch {
	case id.Version < 1 || id.Version > nodeFileVersion:
		return Identity{}, fmt.Errorf("version %d, this node reads 1 to %d", id.Version, nodeFileVersion)
	case len(id.Nonce) > meta.RegistrationNonceBytesMax:
		return Identity{}, fmt.Errorf("registration nonce of %d bytes, at most %d", len(id.Nonce), meta.RegistrationNonceBytesMax)
	case id.ClusterID == "":
		return Identity{}, errors.New("no cluster id")
	case id.NodeID < 1 || id.NodeID > meta.NodeIDMax:
		return Identity{}, fmt.Errorf("node id %d", id.NodeID)
	case id.Incarnation < 1 || id.Incarnation > meta.IncarnationMax:
		return Identity{}, fmt.Errorf("incarnation %d", id.Incarnation)
	}
	return id, nil
}

// check compares a stored identity with the flags.
func (id Identity) check(nodeID int32, clusterID string) error {
	if id.NodeID != nodeID {
		return fmt.Errorf("%w: node id %d, started as %d", ErrIdentityMismatch, id.NodeID, nodeID)
	}
	if clusterID != "" && id.ClusterID != clusterID {
		return fmt.Errorf("%w: cluster %q, started for %q", ErrIdentityMismatch, id.ClusterID, clusterID)
	}
	return nil
}

// ClusterIDFromPeers derives the cluster id of a cluster bootstrapped with
// --peers: base64url of the first 16 bytes of SHA-256 over the sorted
// "node id=raft address" lines. Every node is started with the same list,
// so every node computes the same id without talking to the others, and
// the transport's handshake then refuses a node started with another list.
// Two clusters bootstrapped from the same list get the same id: the list
// names the machines, so they are the same cluster started again (after
// every node lost its data).
func ClusterIDFromPeers(peers map[int32]string) string {
	ids := make([]int32, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	h := sha256.New()
	h.Write([]byte("cairn cluster v1\n"))
	for _, id := range ids {
		h.Write([]byte(strconv.Itoa(int(id)) + "=" + peers[id] + "\n"))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// NewClusterID draws the id of a single node's new cluster from the env's
// randomness, in the form cluster.json uses (base64url of 16 bytes).
func NewClusterID(e env.Env) (string, error) {
	var b [16]byte
	if _, err := e.Rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("controller: draw a cluster id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// drawNonce gives a new node its registration nonce, unless it has one.
func (id *Identity) drawNonce(e env.Env) error {
	if len(id.Nonce) > 0 {
		return nil
	}
	id.Nonce = make([]byte, nonceBytes)
	if _, err := e.Rand.Read(id.Nonce); err != nil {
		return fmt.Errorf("controller: draw a registration nonce: %w", err)
	}
	return nil
}
