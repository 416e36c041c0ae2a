package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/beacongrid/beacongrid/rules"
	"github.com/beacongrid/beacongrid/sidecar"
)

func init() { register(newRulesCmd) }

func newRulesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rules",
		Short: "Work with operator rules files (docs/rules.md)",
	}
	c.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Validate a rules file with the plugin's own loader; print every error with its line and a hint",
		Long: `check loads FILE exactly as the plugin and the sidecar do (rules.Load) and
prints every problem as FILE:LINE[:COLUMN]: PATH: MESSAGE, the offending line,
and a hint. It exits non-zero when the file would be refused. Warnings (entries
already expired) do not fail the check.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return checkRules(cmd.OutOrStdout(), args[0])
		},
	})
	return c
}

// checkRules prints what is wrong with the rules file path, or a summary
// of what it holds.
func checkRules(w io.Writer, path string) error {
	s, err := rules.Load(path)
	src, _ := os.ReadFile(path)
	lines := strings.Split(string(src), "\n")
	show := func(kind string, e rules.Error) {
		fmt.Fprintf(w, "%s:%s%s\n", path, kind, strings.TrimSuffix(e.Error(), hintOf(e)))
		if e.Line >= 1 && e.Line <= len(lines) {
			text := strings.ReplaceAll(lines[e.Line-1], "\t", " ")
			fmt.Fprintf(w, "  %4d | %s\n", e.Line, text)
			if e.Column >= 1 && e.Column <= len(text)+1 {
				fmt.Fprintf(w, "       | %s^\n", strings.Repeat(" ", e.Column-1))
			}
		}
		if e.Hint != "" {
			fmt.Fprintf(w, "       hint: %s\n", e.Hint)
		}
	}
	var el *rules.ErrorList
	if errors.As(err, &el) {
		for _, e := range el.Errs {
			show("", e)
		}
		return fmt.Errorf("rules check: %s: %d error(s); the plugin would keep its previous rules", path, len(el.Errs))
	}
	if err != nil {
		return err
	}
	for _, e := range s.Warnings() {
		show(" warning: ", e)
	}
	fmt.Fprintf(w, "%s: ok, version %s: %s\n", path, s.Version(), s.Counts())
	return nil
}

// hintOf is the " (hint: ...)" suffix of e's message, printed on its own line.
func hintOf(e rules.Error) string {
	if e.Hint == "" {
		return ""
	}
	return " (hint: " + e.Hint + ")"
}

// addRulesFlags adds the sidecar's rules and admin endpoint flags.
func addRulesFlags(fl *pflag.FlagSet, c *sidecar.RulesConfig) {
	fl.StringVar(&c.File, "rules", "", "rules `file` the plugin's rules_file names: watched, and served by the admin endpoint")
	fl.StringVar(&c.AdminListen, "admin-listen", sidecar.DefaultAdminListen, "`address` of the rules admin endpoint (needs --rules and --admin-token-file); empty disables")
	fl.StringVar(&c.TokenFile, "admin-token-file", os.Getenv("BEACONGRID_ADMIN_TOKEN_FILE"), "`file` of admin bearer tokens, one a line, name:token (default $BEACONGRID_ADMIN_TOKEN_FILE)")
	fl.StringVar(&c.AuditLog, "admin-audit-log", "", "append-only `file` recording each rules change (default <rules>.audit.jsonl)")
}
