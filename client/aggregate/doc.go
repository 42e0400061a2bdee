// Package aggregate loads and saves event-sourced aggregates on Cairn
// streams: an aggregate's state is the fold of its stream's events, a
// command appends new events expecting the revision it decided on, and a
// conflicting writer makes the command run again on the newer state.
// SaveAll saves several aggregates, of one repository or several, in one
// AppendMulti: all at the revisions their roots were loaded at, or none.
//
// Snapshots spare long streams a full replay. They live in the companion
// topic "<topic>.snapshots", one stream per aggregate named like it, each
// snapshot an event whose metadata names the revision it covers. The
// snapshot stream has max_count=1, so reads see only the newest and the
// topic's cleanup.policy=stream cleaner drops the older ones: the companion
// topic is compacted by key. Load reads that one snapshot (backwards, max
// 1) and then the events after the revision it covers.
package aggregate
