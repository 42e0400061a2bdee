package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/transport"
)

// A node started with Config.Join instead of Peers joins a running
// cluster through one member's Raft address. Its identity comes from the
// member's answer (controller.JoinByAddress: the cluster id, a new
// incarnation, every broker's Raft address, which become its peers), its
// meta log starts empty (the controller creates it before writing
// node.json) and waits for the leader's snapshot; the metadata leader
// marks it ACTIVE once it caught up.

// nodeIdentity reads or makes this node's identity before the transport
// exists: from the peer list (its cluster id), or for a joining node from
// node.json or, for a new one, the member's answer. c.cfg.Peers of a
// joining node becomes the brokers the member named, this node at
// RaftAddr among them.
func (c *Cluster) nodeIdentity(names []string) (controller.Identity, error) {
	cfg := c.cfg
	clusterID := ""
	if cfg.Join == "" {
		clusterID = controller.ClusterIDFromPeers(cfg.Peers)
	}
	ident, err := controller.OpenIdentity(c.env.FS, cfg.DataDir, cfg.NodeID, clusterID)
	isNew := errors.Is(err, controller.ErrNoIdentity) || (err == nil && ident.New)
	if err != nil && !(cfg.Join != "" && isNew) {
		return controller.Identity{}, fmt.Errorf("cluster: %w", err)
	}
	if plan := planDataDir(names, nil); isNew && len(plan.unknown) > 0 {
		return controller.Identity{}, unknownPartitionsError(cfg.DataDir, plan.unknown)
	}
	if cfg.Join == "" {
		return ident, nil
	}
	c.cfg.Peers = map[int32]string{cfg.NodeID: cfg.RaftAddr}
	if !isNew {
		return ident, nil // findMembers asks again while the log is empty
	}
	nonce, err := controller.NewNonce(c.env)
	if err != nil {
		return controller.Identity{}, fmt.Errorf("cluster: %w", err)
	}
	answer, err := c.askToJoin(nonce)
	if err != nil {
		return controller.Identity{}, err
	}
	return controller.JoiningIdentity(cfg.NodeID, nonce, answer), nil
}

// askToJoin asks the member at Config.Join to register this node (under
// the registration nonce: the same nonce, the same incarnation) and add
// it as a learner, within StartTimeoutMs; the brokers it names become
// this node's peers. An answer of unknown outcome (the member's proposals
// timed out: a metadata leader changing, a frame lost, another
// configuration change not applied yet) is asked again after an election
// timeout, as a rejoining node asks its members again (the simulation's
// joins under faults failed Open so); so is a refusal because the node's
// current incarnation answered the leader lately (ErrLiveIncarnation: a
// node wiped and started again within an election timeout, which the
// simulation's repair of a damaged node does; a second process under a
// live node's id gets the refusal at StartTimeoutMs), and so is "no
// metadata leader" (an election under way, or a majority of the metadata
// group's voters unreachable for a while: seed 5698).
func (c *Cluster) askToJoin(nonce []byte) (controller.JoinAnswer, error) {
	ctx, cancel := env.WithTimeout(context.Background(), c.env.Clock, time.Duration(c.cfg.StartTimeoutMs)*time.Millisecond)
	defer cancel()
	join := c.cfg.Joiner
	if join == nil {
		join = transport.TCPJoiner(c.cfg.TransportTLS)
	}
	var answer controller.JoinAnswer
	for {
		var err error
		answer, err = controller.JoinThrough(ctx, join, c.cfg.Join, c.cfg.NodeID, c.cfg.RaftAddr, nonce)
		if err == nil {
			break
		}
		retry := errors.Is(err, controller.ErrTimeout) || errors.Is(err, controller.ErrLiveIncarnation) ||
			errors.Is(err, controller.ErrNotController)
		if !retry || ctx.Err() != nil {
			return controller.JoinAnswer{}, fmt.Errorf("cluster: join the cluster through %s: %w", c.cfg.Join, err)
		}
		c.env.Logger.Info("join not done; asking again", "through", c.cfg.Join, "err", err)
		pause := c.env.Clock.NewTimer(time.Duration(c.cfg.RaftTickMs*int64(c.cfg.RaftElectionTicks)) * time.Millisecond)
		select {
		case <-pause.C():
		case <-ctx.Done():
			pause.Stop()
			return controller.JoinAnswer{}, fmt.Errorf("cluster: join the cluster through %s: %w", c.cfg.Join, err)
		}
	}
	peers := maps.Clone(answer.Peers)
	peers[c.cfg.NodeID] = c.cfg.RaftAddr
	c.cfg.Peers = peers
	c.env.Logger.Info("joined the cluster as a learner", "through", c.cfg.Join, "node", c.cfg.NodeID,
		"incarnation", answer.Incarnation, "members", peersString(peers))
	return answer, nil
}

// findMembers gives a joining node restarted before the leader's
// snapshot reached it the members to talk to: its state is still empty
// (no broker), so it asks the member at Config.Join again with
// node.json's nonce (the same registration, so the same incarnation, or
// a refusal) and makes the brokers named transport peers. A node whose
// state holds the brokers gets them from there (onMetaApplied).
func (c *Cluster) findMembers(ctx context.Context) error {
	if c.cfg.Join == "" || len(c.ctl.State().Brokers) > 0 {
		return nil
	}
	ident := c.ctl.Identity()
	answer, err := c.askToJoin(ident.Nonce)
	if err != nil {
		return err
	}
	if answer.ClusterID != ident.ClusterID || answer.Incarnation != ident.Incarnation {
		return fmt.Errorf("cluster: join through %s: answered cluster %q incarnation %d, node.json holds %q incarnation %d",
			c.cfg.Join, answer.ClusterID, answer.Incarnation, ident.ClusterID, ident.Incarnation)
	}
	if err := c.addPeers(c.cfg.Peers); err != nil {
		return err
	}
	c.node.leaders.SetPeers(peerNodes(c.cfg.Peers))
	return ctx.Err()
}

// addPeers makes the nodes of peers transport peers (the leader table's
// peers are set by the caller, or from the state once applied).
func (c *Cluster) addPeers(peers map[int32]string) error {
	n := c.node
	n.knownMu.Lock()
	defer n.knownMu.Unlock()
	for id, addr := range peers {
		if id == c.cfg.NodeID || n.known[id] == addr {
			continue
		}
		if err := n.tcp.AddPeer(uint64(id), c.dialAddr(id, addr)); err != nil {
			return fmt.Errorf("cluster: peer %d: %w", id, err)
		}
		n.known[id] = addr
	}
	return nil
}
