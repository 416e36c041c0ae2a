package main

import (
	"bytes"
	"testing"

	"github.com/spf13/cobra"
)

// runCommand executes one subcommand with args and returns what it wrote
// to stdout and stderr together.
func runCommand(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func runSimulate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCommand(t, newSimulateCmd(), args...)
}

func runFeatures(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCommand(t, newFeaturesCmd(), args...)
}
