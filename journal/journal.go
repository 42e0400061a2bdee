package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/cairnlog/cairn/storage/vfs"
)

// Key names the partition a record belongs to.
type Key struct {
	// Name is the partition's directory name, topic-index.
	Name string
	// TopicID is the topic's id.
	TopicID [16]byte
}

// Record is one partition's batches made durable by one round.
type Record struct {
	Key Key
	// First is the base offset of the first batch of Data, Next the offset
	// after its last.
	First, Next int64
	// Data is whole RecordBatch v2 batches back to back.
	Data []byte
}

const (
	suffix         = ".journal"
	version        = 1
	headerBytes    = 8
	fixedBody      = 4 + 16 + 8 + 8
	maxNameBytes   = 1<<16 - 1
	nameDigits     = 20
	defaultMaxFile = 64 << 20
)

// MaxRecordBytes bounds one record's body: a partition with more unsynced
// data than this syncs its own files instead, and a reader takes a larger
// length for damage.
const MaxRecordBytes = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrFailed wraps every error of a journal that failed a write or sync:
// after a failed fdatasync nothing written since the last good one can be
// trusted, so the journal takes no more rounds.
var ErrFailed = errors.New("journal failed")

// AppendRecord appends r's encoding to dst.
func AppendRecord(dst []byte, r Record) ([]byte, error) {
	dst, start, err := BeginRecord(dst, r.Key, r.First, r.Next, len(r.Data))
	if err != nil {
		return dst, err
	}
	return EndRecord(append(dst, r.Data...), start), nil
}

// RecordBytes is the size of a record's encoding with dataLen bytes of
// batches, name naming its partition.
func RecordBytes(name string, dataLen int) int {
	return headerBytes + fixedBody + len(name) + dataLen
}

// BeginRecord appends the start of a record's encoding to dst: the caller
// then appends exactly dataLen bytes of batches and calls EndRecord with
// start. It lets a round read each partition's batches straight into the
// round's buffer.
func BeginRecord(dst []byte, key Key, first, next int64, dataLen int) (out []byte, start int, err error) {
	if len(key.Name) > maxNameBytes {
		return dst, 0, fmt.Errorf("journal record: name of %d bytes", len(key.Name))
	}
	body := fixedBody + len(key.Name) + dataLen
	if body > MaxRecordBytes {
		return dst, 0, fmt.Errorf("journal record: %d bytes, more than %d", body, MaxRecordBytes)
	}
	start = len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(body))
	dst = binary.BigEndian.AppendUint32(dst, 0) // crc, set by EndRecord
	dst = append(dst, version, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(key.Name)))
	dst = append(dst, key.Name...)
	dst = append(dst, key.TopicID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(first))
	dst = binary.BigEndian.AppendUint64(dst, uint64(next))
	return dst, start, nil
}

// EndRecord sets the CRC of the record BeginRecord started at start, whose
// data dst now ends with.
func EndRecord(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+headerBytes:], castagnoli))
	return dst
}

// DecodeRecords returns the records of one journal file's content, up to
// the first incomplete or damaged one, and how many bytes they take. The
// records' Data alias b.
func DecodeRecords(b []byte) (records []Record, used int) {
	for {
		r, n, ok := decodeRecord(b[used:])
		if !ok {
			return records, used
		}
		records = append(records, r)
		used += n
	}
}

func decodeRecord(b []byte) (Record, int, bool) {
	if len(b) < headerBytes {
		return Record{}, 0, false
	}
	n := int(binary.BigEndian.Uint32(b))
	if n < fixedBody || n > MaxRecordBytes || len(b)-headerBytes < n {
		return Record{}, 0, false
	}
	body := b[headerBytes : headerBytes+n]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[4:]) || body[0] != version || body[1] != 0 {
		return Record{}, 0, false
	}
	nameLen := int(binary.BigEndian.Uint16(body[2:]))
	if fixedBody+nameLen > n {
		return Record{}, 0, false
	}
	rest := body[4+nameLen:]
	r := Record{Key: Key{Name: string(body[4 : 4+nameLen])}}
	copy(r.Key.TopicID[:], rest)
	r.First = int64(binary.BigEndian.Uint64(rest[16:]))
	r.Next = int64(binary.BigEndian.Uint64(rest[24:]))
	r.Data = rest[32:]
	if r.First < 0 || r.Next <= r.First || len(r.Data) == 0 {
		return Record{}, 0, false
	}
	return r, headerBytes + n, true
}

// Journal is an open journal directory. Write, Remove and Close are safe
// for concurrent use; rounds are written one at a time.
type Journal struct {
	fs      vfs.FS
	dir     string
	maxFile int64

	mu      sync.Mutex
	file    vfs.File
	seq     uint64 // the file being written
	size    int64
	files   []uint64 // files on disk, oldest first, seq last
	// open are the files written by this process and not removed: a
	// round's sync may still run on one after the next was started.
	open    map[uint64]vfs.File
	// written counts the bytes written by this process across files, and
	// durable how many of them a sync covered.
	written, durable int64
	failure          error
	closed           bool

	// syncMu makes syncs take turns (lock order: syncMu, then mu), so a
	// round waits only for a sync started after its write, and a failed
	// sync is seen by every round it may have covered.
	syncMu sync.Mutex
}

// Options tune a journal.
type Options struct {
	// MaxFileBytes starts a new file once the current one passes it (0:
	// 64 MiB).
	MaxFileBytes int64
}

// Open opens the journal in dir (creating dir when missing), reads the
// records of the files already there, oldest first, and starts a new file
// after them. The files read stay until Remove; the records' Data are
// copies owned by the caller.
func Open(fsys vfs.FS, dir string, opts Options) (*Journal, []Record, error) {
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, nil, fmt.Errorf("journal %s: %w", dir, err)
	}
	// The directory's own entry must be durable before a round in it is.
	if err := fsys.SyncDir(path.Dir(dir)); err != nil {
		return nil, nil, fmt.Errorf("journal %s: %w", dir, err)
	}
	names, err := fsys.List(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("journal %s: %w", dir, err)
	}
	j := &Journal{fs: fsys, dir: dir, maxFile: opts.MaxFileBytes, open: map[uint64]vfs.File{}}
	if j.maxFile <= 0 {
		j.maxFile = defaultMaxFile
	}
	var records []Record
	for _, name := range names {
		seq, ok := parseName(name)
		if !ok {
			continue
		}
		data, err := vfs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, nil, fmt.Errorf("journal %s: read %s: %w", dir, name, err)
		}
		recs, _ := DecodeRecords(data)
		records = append(records, recs...)
		j.files = append(j.files, seq)
		j.seq = max(j.seq, seq)
	}
	if err := j.startFile(j.seq + 1); err != nil {
		return nil, nil, err
	}
	return j, records, nil
}

func fileName(seq uint64) string {
	s := strconv.FormatUint(seq, 10)
	return strings.Repeat("0", max(0, nameDigits-len(s))) + s + suffix
}

func parseName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, suffix)
	if !ok || len(digits) != nameDigits {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// startFile creates file seq and makes its name durable before a round
// goes to it. Called with mu held, or before the journal is shared.
func (j *Journal) startFile(seq uint64) error {
	name := path.Join(j.dir, fileName(seq))
	f, err := j.fs.Create(name)
	if err != nil {
		return fmt.Errorf("journal: create %s: %w", name, err)
	}
	if err := j.fs.SyncDir(j.dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("journal: sync %s: %w", j.dir, err)
	}
	j.file, j.seq, j.size = f, seq, 0
	j.files = append(j.files, seq)
	j.open[seq] = f
	return nil
}

// Write appends records as one round, with one write, and syncs the file.
// It returns the file holding them. A failed write or sync fails the
// journal for good (ErrFailed); the caller must then make those records'
// data durable another way.
func (j *Journal) Write(records []Record) (seq uint64, err error) {
	var buf []byte
	for _, r := range records {
		if buf, err = AppendRecord(buf, r); err != nil {
			return 0, err
		}
	}
	return j.WriteEncoded(buf)
}

// WriteEncoded is Write of records already encoded back to back
// (BeginRecord, EndRecord). Rounds may be written from several goroutines
// at once: each appends under the journal's lock, then waits for a sync
// that started after its write (group commit: one fdatasync covers every
// round written before it).
func (j *Journal) WriteEncoded(buf []byte) (seq uint64, err error) {
	j.mu.Lock()
	if err := j.writable(); err != nil {
		j.mu.Unlock()
		return 0, err
	}
	if j.size > 0 && j.size+int64(len(buf)) > j.maxFile {
		if err := j.rotate(); err != nil {
			j.mu.Unlock()
			return 0, err
		}
	}
	seq = j.seq
	n, err := j.file.Write(buf)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		err = j.fail(fmt.Errorf("journal: write file %d: %w", seq, err))
		j.mu.Unlock()
		return 0, err
	}
	j.size += int64(n)
	j.written += int64(n)
	end := j.written
	j.mu.Unlock()
	return seq, j.syncTo(end)
}

// syncTo returns once a sync covered the first end bytes written.
func (j *Journal) syncTo(end int64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	if j.failure != nil || j.durable >= end {
		j.mu.Unlock()
		return j.failure
	}
	f, seq, target := j.file, j.seq, j.written
	j.mu.Unlock()
	err := f.Sync()
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		return j.fail(fmt.Errorf("journal: sync file %d: %w", seq, err))
	}
	j.durable = max(j.durable, target)
	return nil
}

// rotate syncs the file being written and starts the next one, so that
// what the old file holds is durable before rounds go to the new one (a
// sync then covers only the newest file). Called with mu held; rare (one
// file of MaxFileBytes).
func (j *Journal) rotate() error {
	if err := j.file.Sync(); err != nil {
		return j.fail(fmt.Errorf("journal: sync file %d: %w", j.seq, err))
	}
	j.durable = j.written
	if err := j.startFile(j.seq + 1); err != nil {
		return j.fail(err)
	}
	return nil
}

func (j *Journal) writable() error {
	if j.closed {
		return fmt.Errorf("journal %s: closed", j.dir)
	}
	return j.failure
}

func (j *Journal) fail(err error) error {
	j.failure = fmt.Errorf("%w: %w", ErrFailed, err)
	return j.failure
}

// Files returns the sequence numbers of the files on disk, oldest first;
// the last is the one being written.
func (j *Journal) Files() []uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]uint64(nil), j.files...)
}

// Current is the file the next round goes to (unless it starts a new one).
func (j *Journal) Current() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seq
}

// Remove deletes file seq, which must not be the one being written: the
// caller saw every record in it covered. The removal need not be durable:
// a file that comes back after a crash holds only records its partitions
// already hold.
func (j *Journal) Remove(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if seq == j.seq && !j.closed {
		return fmt.Errorf("journal %s: file %d is being written", j.dir, seq)
	}
	i := indexOf(j.files, seq)
	if i < 0 {
		return nil
	}
	if f, ok := j.open[seq]; ok {
		delete(j.open, seq)
		_ = f.Close() // only read and written by this process: nothing to report
	}
	if err := j.fs.Remove(path.Join(j.dir, fileName(seq))); err != nil {
		return fmt.Errorf("journal: remove file %d: %w", seq, err)
	}
	j.files = append(j.files[:i], j.files[i+1:]...)
	return nil
}

func indexOf(s []uint64, v uint64) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// Close closes the file being written; Remove may then remove it too.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	var errs []error
	for seq, f := range j.open {
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("journal: close file %d: %w", seq, err))
		}
	}
	j.open = nil
	return errors.Join(errs...)
}
