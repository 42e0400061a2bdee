package main

import (
	"os"
	"syscall"
)

// fdatasync flushes the file's data and the metadata needed to read it back
// (its size), as a log's sync does; the timestamps may wait.
func fdatasync(file *os.File) error {
	return syscall.Fdatasync(int(file.Fd()))
}
