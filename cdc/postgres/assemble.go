package postgres

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cairnlog/cairn/cdc"
)

// ErrTxnTooLarge: a transaction has more changes than the connector holds
// in memory (Config.TxnChangesMax).
var ErrTxnTooLarge = errors.New("transaction too large")

// assembler turns pgoutput messages into committed transactions: it keeps
// the tables announced by Relation messages, the transaction being sent
// (protocol v1, or v2 outside streaming) and the in-progress transactions
// streamed in parts (v2), each until its commit or abort. It does no I/O.
type assembler struct {
	tables     map[uint32]*cdc.Table
	changesMax int

	cur       *cdc.Txn // between Begin and Commit
	inStream  bool     // between StreamStart and StreamStop
	streamXID uint32   // the top-level transaction of the open stream
	streamed  map[uint32]*streamedTxn
	buffered  int // changes held in streamed transactions
	// streamedCommits counts the transactions received in parts.
	streamedCommits int64
}

// streamedTxn is an in-progress transaction streamed in parts; each change
// remembers its subtransaction, which a StreamAbort may roll back alone.
type streamedTxn struct {
	changes []cdc.Change
	subXIDs []uint32
}

func newAssembler(changesMax int) *assembler {
	return &assembler{tables: map[uint32]*cdc.Table{}, changesMax: changesMax, streamed: map[uint32]*streamedTxn{}}
}

// relation records a table's current shape; keys names its primary-key
// columns (looked up by the caller: the message marks the replica identity).
func (a *assembler) relation(m *pglogrepl.RelationMessage, keys map[string]bool) {
	t := &cdc.Table{Schema: m.Namespace, Name: m.RelationName, Columns: make([]cdc.Column, len(m.Columns))}
	for i, c := range m.Columns {
		t.Columns[i] = cdc.Column{Name: c.Name, TypeOID: c.DataType, TypeModifier: c.TypeModifier, Key: keys[c.Name]}
	}
	a.tables[m.RelationID] = t
}

// busy reports a transaction partly received: the server's keepalive
// position may then not be confirmed as if everything before it were
// appended.
func (a *assembler) busy() bool { return a.cur != nil || len(a.streamed) > 0 }

// step takes one message at WAL position lsn; it returns a transaction when
// one committed (or a non-transactional logical message arrived, which
// stands alone at its LSN and the server's time at, when the server sent it).
func (a *assembler) step(msg pglogrepl.Message, lsn uint64, at time.Time) (*cdc.Txn, error) {
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		if a.cur != nil {
			return nil, fmt.Errorf("begin of transaction %d inside transaction %d", m.Xid, a.cur.XID)
		}
		a.cur = &cdc.Txn{XID: m.Xid, CommitLSN: uint64(m.FinalLSN), CommitTime: m.CommitTime}
	case *pglogrepl.CommitMessage:
		if a.cur == nil {
			return nil, fmt.Errorf("commit at %s outside a transaction", m.CommitLSN)
		}
		txn := a.cur
		a.cur = nil
		txn.CommitLSN, txn.CommitTime = uint64(m.CommitLSN), m.CommitTime
		return txn, nil
	case *pglogrepl.StreamStartMessageV2:
		a.inStream, a.streamXID = true, m.Xid
		if a.streamed[m.Xid] == nil {
			a.streamed[m.Xid] = &streamedTxn{}
		}
	case *pglogrepl.StreamStopMessageV2:
		a.inStream = false
	case *pglogrepl.StreamCommitMessageV2:
		s := a.streamed[m.Xid]
		delete(a.streamed, m.Xid)
		txn := &cdc.Txn{XID: m.Xid, CommitLSN: uint64(m.CommitLSN), CommitTime: m.CommitTime}
		a.streamedCommits++
		if s != nil {
			a.buffered -= len(s.changes)
			txn.Changes = s.changes
		}
		return txn, nil
	case *pglogrepl.StreamAbortMessageV2:
		a.abort(m.Xid, m.SubXid)
	case *pglogrepl.RelationMessage, *pglogrepl.RelationMessageV2, *pglogrepl.TypeMessage, *pglogrepl.TypeMessageV2, *pglogrepl.OriginMessage:
		// Relations are the caller's (relation); types come by OID.
	default:
		return a.change(msg, lsn, at)
	}
	return nil, nil
}

func (a *assembler) abort(xid, subXID uint32) {
	s := a.streamed[xid]
	if s == nil {
		return
	}
	if xid == subXID {
		a.buffered -= len(s.changes)
		delete(a.streamed, xid)
		return
	}
	kept, keptSub := s.changes[:0], s.subXIDs[:0]
	for i, c := range s.changes {
		if s.subXIDs[i] != subXID {
			kept, keptSub = append(kept, c), append(keptSub, s.subXIDs[i])
		}
	}
	a.buffered -= len(s.changes) - len(kept)
	s.changes, s.subXIDs = kept, keptSub
}

// change decodes a row change or a logical message and adds it to its
// transaction.
func (a *assembler) change(msg pglogrepl.Message, lsn uint64, at time.Time) (*cdc.Txn, error) {
	var (
		changes []cdc.Change
		xid     uint32 // the subtransaction, inside a stream
		err     error
	)
	switch m := msg.(type) {
	case *pglogrepl.InsertMessageV2:
		xid = m.Xid
		changes, err = a.rowChange(cdc.OpCreate, m.RelationID, nil, m.Tuple, lsn)
	case *pglogrepl.InsertMessage:
		changes, err = a.rowChange(cdc.OpCreate, m.RelationID, nil, m.Tuple, lsn)
	case *pglogrepl.UpdateMessageV2:
		xid = m.Xid
		changes, err = a.rowChange(cdc.OpUpdate, m.RelationID, m.OldTuple, m.NewTuple, lsn)
	case *pglogrepl.UpdateMessage:
		changes, err = a.rowChange(cdc.OpUpdate, m.RelationID, m.OldTuple, m.NewTuple, lsn)
	case *pglogrepl.DeleteMessageV2:
		xid = m.Xid
		changes, err = a.rowChange(cdc.OpDelete, m.RelationID, m.OldTuple, nil, lsn)
	case *pglogrepl.DeleteMessage:
		changes, err = a.rowChange(cdc.OpDelete, m.RelationID, m.OldTuple, nil, lsn)
	case *pglogrepl.TruncateMessageV2:
		xid = m.Xid
		changes, err = a.truncate(m.RelationIDs, lsn)
	case *pglogrepl.TruncateMessage:
		changes, err = a.truncate(m.RelationIDs, lsn)
	case *pglogrepl.LogicalDecodingMessageV2:
		xid = m.Xid
		return a.message(&m.LogicalDecodingMessage, xid, at)
	case *pglogrepl.LogicalDecodingMessage:
		return a.message(m, 0, at)
	default:
		return nil, fmt.Errorf("unexpected pgoutput message %s", msg.Type())
	}
	if err != nil {
		return nil, err
	}
	return nil, a.add(changes, xid)
}

// add appends changes to the transaction they belong to.
func (a *assembler) add(changes []cdc.Change, xid uint32) error {
	if a.inStream {
		// xid is the change's subtransaction (or the transaction itself);
		// the change belongs to the stream's top-level transaction.
		s := a.streamed[a.streamXID]
		if a.buffered+len(changes) > a.changesMax {
			return fmt.Errorf("%w: more than %d changes held in streamed transactions", ErrTxnTooLarge, a.changesMax)
		}
		s.changes = append(s.changes, changes...)
		for range changes {
			s.subXIDs = append(s.subXIDs, xid)
		}
		a.buffered += len(changes)
		return nil
	}
	if a.cur == nil {
		return fmt.Errorf("change outside a transaction")
	}
	if len(a.cur.Changes)+len(changes) > a.changesMax {
		return fmt.Errorf("%w: transaction %d has more than %d changes", ErrTxnTooLarge, a.cur.XID, a.changesMax)
	}
	a.cur.Changes = append(a.cur.Changes, changes...)
	return nil
}

// rowChange builds an insert, update or delete of a table announced by a
// Relation message.
func (a *assembler) rowChange(op cdc.Op, rel uint32, old, new *pglogrepl.TupleData, lsn uint64) ([]cdc.Change, error) {
	t := a.tables[rel]
	if t == nil {
		return nil, fmt.Errorf("change of relation %d before its Relation message", rel)
	}
	c := cdc.Change{Op: op, Table: t, LSN: lsn}
	var err error
	if old != nil {
		// 'K' carries only the replica identity's columns, the others as
		// NULL: Debezium's before of a delete under REPLICA IDENTITY DEFAULT.
		if c.Before, err = rowOf(t, old); err != nil {
			return nil, fmt.Errorf("%s.%s old row: %w", t.Schema, t.Name, err)
		}
	}
	if new != nil {
		if c.After, err = rowOf(t, new); err != nil {
			return nil, fmt.Errorf("%s.%s new row: %w", t.Schema, t.Name, err)
		}
	}
	return []cdc.Change{c}, nil
}

func rowOf(t *cdc.Table, tuple *pglogrepl.TupleData) (cdc.Row, error) {
	if len(tuple.Columns) != len(t.Columns) {
		return nil, fmt.Errorf("%d values for %d columns", len(tuple.Columns), len(t.Columns))
	}
	row := make(cdc.Row, len(tuple.Columns))
	for i, col := range tuple.Columns {
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
			row[i] = cdc.Datum{Kind: cdc.DatumNull}
		case pglogrepl.TupleDataTypeToast:
			row[i] = cdc.Datum{Kind: cdc.DatumUnchanged}
		case pglogrepl.TupleDataTypeText:
			row[i] = cdc.Datum{Kind: cdc.DatumText, Text: col.Data}
		default:
			return nil, fmt.Errorf("column %s: data kind %q (only text output is asked for)", t.Columns[i].Name, col.DataType)
		}
	}
	return row, nil
}

func (a *assembler) truncate(rels []uint32, lsn uint64) ([]cdc.Change, error) {
	out := make([]cdc.Change, 0, len(rels))
	for _, rel := range rels {
		t := a.tables[rel]
		if t == nil {
			return nil, fmt.Errorf("truncate of relation %d before its Relation message", rel)
		}
		out = append(out, cdc.Change{Op: cdc.OpTruncate, Table: t, LSN: lsn})
	}
	return out, nil
}

// message handles pg_logical_emit_message: a transactional one is a change
// of its transaction, another stands alone at its own LSN.
func (a *assembler) message(m *pglogrepl.LogicalDecodingMessage, xid uint32, at time.Time) (*cdc.Txn, error) {
	c := cdc.Change{Op: cdc.OpMessage, Message: &cdc.Message{Prefix: m.Prefix, Content: m.Content}, LSN: uint64(m.LSN)}
	if m.Transactional {
		return nil, a.add([]cdc.Change{c}, xid)
	}
	return &cdc.Txn{CommitLSN: uint64(m.LSN), CommitTime: at, Changes: []cdc.Change{c}}, nil
}
