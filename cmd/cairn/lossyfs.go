//go:build lossyfs

package main

import (
	"fmt"
	"os"

	"github.com/cairnlog/cairn/storage/vfs"
)

// lossyFSEnv, set to 1, makes serve in the lossyfs build run on a
// vfs.LossyFS over its data directory: a SIGKILL then loses what was not
// synced, as a power cut of the node would. Binaries built without the tag
// neither read it nor contain the filesystem.
const lossyFSEnv = "CAIRN_TEST_LOSSYFS"

func init() {
	serveFS = func(dataDir string) (vfs.FS, error) {
		if os.Getenv(lossyFSEnv) != "1" {
			return nil, nil
		}
		fsys, err := vfs.NewLossyFS(dataDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", lossyFSEnv, err)
		}
		return fsys, nil
	}
}
