package main

import (
	"sort"

	"github.com/spf13/cobra"
)

// Each subcommand file registers its command constructor in an init function.
var constructors []func() *cobra.Command

func register(c func() *cobra.Command) { constructors = append(constructors, c) }

func subcommands() []*cobra.Command {
	out := make([]*cobra.Command, 0, len(constructors))
	for _, c := range constructors {
		out = append(out, c())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}
