package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine/php"
)

// layoutUsage documents the --layout option.
const layoutUsage = "how the PHP structure layout is made: auto (derived from the PHP binary's code, checked against coroner's table), derived (the binary only), table (the table only)"

// registerLayout adds --layout to cmd; with optional, "--layout" alone is
// accepted (as auto) and cmd tells it apart with layoutGiven.
func registerLayout(cmd *cobra.Command, mode *string, optional bool) {
	usage := layoutUsage
	if optional {
		usage = "print the PHP structure layout used: each offset, where it came from and what checked it on the core; =MODE: " + layoutUsage
	}
	cmd.Flags().StringVar(mode, "layout", "", usage)
	if optional {
		cmd.Flags().Lookup("layout").NoOptDefVal = string(php.LayoutAuto)
	}
}

// layoutGiven reports whether --layout was on the command line.
func layoutGiven(cmd *cobra.Command) bool { return cmd.Flags().Changed("layout") }

// parseLayout checks a --layout value.
func parseLayout(s string) (php.LayoutMode, error) {
	m, err := php.ParseLayoutMode(s)
	if err != nil {
		return "", fmt.Errorf("--layout: %w", err)
	}
	return m, nil
}
