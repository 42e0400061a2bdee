package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// version is the release this binary was built from. Release builds set it
// with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Long: `Print the version of this binary: "dev" for a development build, the release
name for a release build (set at link time with -ldflags "-X main.version=...").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version)
			return err
		},
	}
}
