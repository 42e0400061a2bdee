// Package vfs is the filesystem interface that every file access in storage
// goes through, so that tests can run the same code on the real disk, in
// memory, on a filesystem that simulates a power cut, and on one that injects
// failures (failed fsync, full disk, short writes).
//
// Implementations:
//
//   - [Default]: the operating system's filesystem. File.Sync is fdatasync,
//     FS.SyncDir is fsync of the directory. Its files are syscall.Conns,
//     for sendfile, and a [WritebackStarter] (sync_file_range, a hint that
//     makes nothing durable); the other implementations ignore
//     [StartWriteback].
//   - [NewMem]: an in-memory filesystem where everything is durable at once.
//   - [CrashFS]: an in-memory filesystem that remembers, for every file, the
//     bytes made durable by File.Sync and, for every directory, the entries
//     made durable by FS.SyncDir. [CrashFS.Crash] returns the filesystem a
//     power cut would leave behind, optionally with torn, half-written tails.
//   - [ErrorFS]: wraps another FS and fails chosen operations on chosen paths.
//   - [PowerCutFS]: wraps a CrashFS and cuts the power before its n-th
//     mutating call, so a test can crash an operation at every step.
//   - [LossyFS]: the operating system's filesystem under one root, keeping
//     in process memory what CrashFS would lose (unsynced appends, entries
//     not yet made durable by SyncDir), so a SIGKILL of a real process is
//     a power cut of its machine. Only the lossyfs build of cmd/cairn uses
//     it, for the fault tests of real processes.
//
// Writes always append at the end of the file: the log never rewrites bytes in
// place, and append-only writes are what the crash model reasons about.
//
// FS.Lock takes an exclusive lock on a file (flock on the OS filesystem, a
// flag in memory), so that one process at a time owns a data directory.
//
// Names are slash-separated paths as the operating system takes them; the
// in-memory filesystems treat relative and absolute names alike, rooted at one
// directory that always exists and is always durable.
//
// The stream index (pebble) reaches the same filesystem through the adapter
// in storage/vfs/pebblefs, so every implementation above covers it too.
package vfs
