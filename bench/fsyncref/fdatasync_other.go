//go:build !linux

package main

import "os"

// fdatasync falls back to a full sync where the system has no fdatasync.
func fdatasync(file *os.File) error {
	return file.Sync()
}
