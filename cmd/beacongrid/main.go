// Command beacongrid is the project's one CLI: replay logs through the
// detector offline, simulate traffic, evaluate, run the sidecar daemon.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "beacongrid",
		Short:         "Find C2 beaconing in network logs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(subcommands()...)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "beacongrid:", err)
		os.Exit(1)
	}
}
