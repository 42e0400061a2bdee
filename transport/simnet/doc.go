// Package simnet is an in-memory network between the nodes of a cluster
// run in one process, standing in for transport.TCP (cluster.Config.Transport)
// in simulations (docs/design/simulation.md).
//
// A Network joins Endpoints, one per node (Network.Open, with the
// transport.Config the node would give TCP: its id and handlers). What an
// endpoint sends is copied (Raft messages marshalled, frame payloads
// copied) and put in flight as one whole frame; a frame is dropped,
// duplicated or delayed as the network's Faults say, so random delays
// reorder frames, as TCP never does but a reconnection can (lost frames
// between two connections). Each link (sender, receiver) draws those
// choices from a source of its own, seeded from the env's Rand the network
// was made with and the link: what befalls one link's frames does not
// depend on when other links send theirs. A frame falls due at its send
// time on the env's Clock plus its delay. The network has no goroutine:
// the simulation's loop calls DeliverDue at the point of its order of work
// it chooses (after moving the clock; docs/design/simulation.md), which
// delivers the frames due, in (deadline, sender, receiver, send order on
// the link), and runs the receivers' handlers on the loop's goroutine, so
// a handler sees frames from one sender in delivery order, as TCP's one
// reader per peer gives them. A handler must not wait for the clock.
//
// SetDrop loses chosen frames (a type, a link) on purpose, for a test
// aimed at one message. SetObserver hears of every frame's fate (sent with
// its delay, not sent for want of an open receiver, dropped, held,
// released, delivered, blocked, lost), for a
// simulation's trace: two runs of a seed are compared through it.
//
// Pause and Resume stand for a stopped process (SIGSTOP): frames sent to
// a paused node or by it are held, neither lost nor reported, and fall due
// in the order above once it resumes; a paused node is not
// connected. The node's clock is the test's to freeze.
//
// Partitions are one-way cuts between node ids (Cut; Isolate, Split, Ring
// and Bridge compose them); Heal restores every link. A frame whose link is
// cut when it is due is lost, as in a black hole. Unreachable reports, as
// TCP does, the peer a frame to which was lost (unknown peer, receiver not
// open or closed since the send, cut link), once until a frame reaches it.
// A node closed and opened again gets a new Endpoint: frames sent to the
// old one are lost, as a connection's are when its process dies. Its
// peers are told it is gone (Gone, PeerGone), as TCP tells a peer whose
// address refuses dials, and Config.PeerChanged hears of each close and
// open; PeerConnected is an open peer linked both ways. Ping answers at
// once for a connected peer, fails at once for a closed one and after its
// bound on the env clock across a cut.
//
// What TCP checks and this network does too: a Raft message is delivered
// only when it comes from a replica of the sending node and is for a
// replica of the receiving one (Metrics.MessagesMisaddressed otherwise), and
// a frame type without a handler is a protocol error (dropped, counted).
// It has no handshake (cluster ids, incarnations) between endpoints. A
// join connection is Network.Join (a transport.Joiner, for
// cluster.Config.Joiner): the endpoint listening at the address asked
// (Config.ListenAddr) runs its JoinHandler on a goroutine of its own,
// never holding up deliveries, and answers with its cluster id and node
// id; no endpoint there, a cut either way or a pause fail it at once.
package simnet
