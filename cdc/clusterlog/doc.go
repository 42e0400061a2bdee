// Package clusterlog is the log a change-data-capture connector writes to
// in a running node: the partitions of its cluster (postgres.Log over
// *cluster.Cluster). An append is one batch, acknowledged as acks=all is
// (committed by a quorum on a cluster node, synced on a single node); the
// last position of a partition is read after a linearizing round, so a
// connector that just moved to a new leader sees every acknowledged append.
//
// Appends and reads are served by this node's replica, so the node must
// lead the partitions the connector writes: on a cluster, before using a
// partition led elsewhere, the log asks for its leadership
// (cluster.TransferLeader, bounded by leadTimeout). A partition without a
// replica on this node cannot be written: the append fails and the
// connector stops (its runner restarts it).
//
// TxnLog adds atomic appends (postgres.AtomicLog): the batches of several
// partitions as one Kafka transaction of the connector's transactional id,
// driven through the node's transaction coordinator (package txn) in
// process. The id's coordinator must be this node, so the log takes the
// leadership of its __transaction_state partition as it takes its data
// partitions'. Fence (InitProducerId) bumps the epoch, fencing a writer
// still running elsewhere, and returns once an unfinished transaction of
// the id is aborted (or its decided commit completed). LastPosition and
// Records skip aborted and open transactional batches, so a position is
// only ever read from committed records.
package clusterlog
