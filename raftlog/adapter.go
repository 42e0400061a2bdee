package raftlog

import "go.etcd.io/raft/v3/raftpb"

// RaftStorage is a Log as the replica driver persists through
// (replica.Storage): the Log's own methods, with Append and ApplySnapshot
// taking the time from a clock rather than from each call.
type RaftStorage struct {
	*Log
	nowMs func() int64
}

// Storage returns the Log as replica.Storage, stamping what it writes with
// nowMs (segment ages for time-based rolling).
func (l *Log) Storage(nowMs func() int64) *RaftStorage {
	return &RaftStorage{Log: l, nowMs: nowMs}
}

// Append writes entries; see Log.Append.
func (s *RaftStorage) Append(ents []*raftpb.Entry) error {
	return s.Log.Append(ents, s.nowMs())
}

// ApplySnapshot installs snap; see Log.ApplySnapshot.
func (s *RaftStorage) ApplySnapshot(snap *raftpb.Snapshot) error {
	return s.Log.ApplySnapshot(snap, s.nowMs())
}
