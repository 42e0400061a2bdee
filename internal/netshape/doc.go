// Package netshape names the one-way links that common network partitions
// cut: a node isolated, sides split, a ring where each node sees only its
// neighbours, two sides joined by one bridge node. The simulated networks
// (internal/sim for one replicated group, transport/simnet for whole
// nodes) cut what it lists, so both mean the same by each shape.
package netshape
