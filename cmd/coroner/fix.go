package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
)

func init() {
	addCommand("fix", func() {
		var af auditFlags
		var fo audit.FixOptions
		var apply, rollback, reload, force, asJSON bool
		var mitigate string
		cmd := &cobra.Command{
			Use:   "fix",
			Short: "Show (and with --apply write) the configuration changes that make cores appear or mitigate JIT crashes",
			Long: `fix prints, as a diff, the changes for the chosen profiles:
	  --capture                 make the next crash leave a core (sysctl.d core_pattern, systemd LimitCORE
	                            drop-in, pool rlimit_core = unlimited and process.dumpable = yes, systemd-coredump limits)
	  --mitigate=function-jit   opcache.jit=function in a last-sorted conf.d ini
	  --mitigate=no-pcre-jit    pcre.jit=0
	  --mitigate=no-jit         opcache.jit=disable, opcache.jit_buffer_size=0
	For PHP inside Apache (mod_php) the same profiles write mod_php's ini directory
	(/etc/php/X/apache2/conf.d, /etc/php.d) and reload Apache, and --capture sets CoreDumpDirectory;
	--sapi apache2handler (or fpm-fcgi) limits the changes to one kind of installation.
	--apply writes them atomically, backs up every file it changes and writes a rollback manifest
	under --state-dir; --rollback restores the latest one. Services are reloaded only with --reload.
	--json prints the same as one JSON document (docs/json-schema.md): each change with its diff, the
	reload commands, and with --apply the backups and manifest written.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				out := cmd.OutOrStdout()
				live := af.opts.Root == "" || af.opts.Root == "/"
				if reload && !live {
					return usageErrorf("--reload works on this machine only, not with --root")
				}
				if rollback {
					res, err := audit.Rollback(af.opts.Root, fo.StateDir, force)
					if asJSON {
						return fixJSONRollback(cmd, af.opts.Root, fo.StateDir, res, err, reload)
					}
					if res != nil {
						for _, p := range res.Restored {
							fmt.Fprintf(out, "restored %s\n", p)
						}
						for _, p := range res.Removed {
							fmt.Fprintf(out, "removed  %s\n", p)
						}
						for _, p := range res.Skipped {
							fmt.Fprintf(out, "skipped  %s\n", p)
						}
					}
					if err != nil {
						return err
					}
					if len(res.Skipped) > 0 {
						return fmt.Errorf("rollback incomplete: %d file(s) skipped", len(res.Skipped))
					}
					return afterChange(cmd, res.Reload, reload)
				}
				fo.Mitigate = crash.Mitigation(mitigate)
				r, err := audit.Run(af.opts)
				if err != nil {
					return err
				}
				plan, err := audit.PlanFix(r, fo)
				if err != nil {
					return err
				}
				if asJSON {
					return fixJSON(cmd, r, plan, apply, reload)
				}
				if err := plan.WriteDiff(out); err != nil {
					return err
				}
				if !apply {
					if len(plan.Changes) > 0 {
						fmt.Fprintln(out, "(dry run: nothing written; add --apply to write these changes)")
					}
					return nil
				}
				manifest, err := plan.Apply(r)
				if err != nil {
					return err
				}
				if manifest != "" {
					fmt.Fprintf(out, "applied; backups and rollback manifest: %s (undo with coroner fix --rollback)\n", manifest)
				}
				return afterChange(cmd, plan.Reload, reload)
			},
		}
		af.register(cmd)
		fl := cmd.Flags()
		fl.BoolVar(&fo.Capture, "capture", false, "make the next crash leave a core")
		fl.StringVar(&mitigate, "mitigate", "", "mitigation profile: function-jit, no-pcre-jit or no-jit")
		fl.StringVar(&fo.SAPI, "sapi", "", "change only the installations running PHP this way: fpm-fcgi (PHP-FPM) or apache2handler (Apache mod_php)")
		fl.StringVar(&fo.CoreDir, "core-dir", audit.DefaultCoreDir, "directory for cores when core_pattern is rewritten")
		fl.StringVar(&fo.StateDir, "state-dir", audit.DefaultStateDir, "backups and rollback manifests (inside --root when given)")
		fl.BoolVar(&apply, "apply", false, "write the changes (default: only print them)")
		fl.BoolVar(&rollback, "rollback", false, "undo the latest applied fix")
		exclusiveFlags(cmd, "apply", "rollback")
		exclusiveFlags(cmd, "rollback", "mitigate")
		fl.BoolVar(&force, "force", false, "with --rollback: restore files even if they changed since the fix")
		fl.BoolVar(&reload, "reload", false, "run the reload/restart commands after --apply or --rollback")
		fl.BoolVar(&asJSON, "json", false, "print the plan (with --apply: what was written; with --rollback: what was restored) as JSON")
		rootCmd.AddCommand(cmd)
	})
}

// afterChange runs or lists the reload commands.
func afterChange(cmd *cobra.Command, cmds []string, reload bool) error {
	out := cmd.OutOrStdout()
	if len(cmds) == 0 {
		return nil
	}
	if !reload {
		fmt.Fprintln(out, "not reloaded (add --reload to run):")
		for _, c := range cmds {
			fmt.Fprintf(out, "  %s\n", c)
		}
		return nil
	}
	return audit.Reload(cmds, out)
}

// fixJSON prints the plan as a JSON document, applying it first with
// apply (the reload commands' output goes to standard error).
func fixJSON(cmd *cobra.Command, r *audit.Report, plan *audit.Plan, apply, reload bool) error {
	doc, err := plan.Document()
	if err != nil {
		return err
	}
	if apply {
		manifest, err := plan.Apply(r)
		if err != nil {
			return err
		}
		if err := doc.Applied(manifest); err != nil {
			return err
		}
		if reload && len(plan.Reload) > 0 {
			err = audit.Reload(plan.Reload, cmd.ErrOrStderr())
			doc.Reloaded = err == nil
		}
		if jerr := writeFixJSON(cmd, doc); jerr != nil {
			return jerr
		}
		return err
	}
	return writeFixJSON(cmd, doc)
}

// fixJSONRollback prints what a rollback did as a JSON document (also
// when it was incomplete), then returns its error.
func fixJSONRollback(cmd *cobra.Command, root, stateDir string, res *audit.RollbackResult, err error, reload bool) error {
	if res == nil {
		return err
	}
	doc := audit.RollbackDocument(root, stateDir, res)
	if err == nil && len(res.Skipped) > 0 {
		err = fmt.Errorf("rollback incomplete: %d file(s) skipped", len(res.Skipped))
	}
	if err == nil && reload && len(res.Reload) > 0 {
		err = audit.Reload(res.Reload, cmd.ErrOrStderr())
		doc.Reloaded = err == nil
	}
	if jerr := writeFixJSON(cmd, doc); jerr != nil {
		return jerr
	}
	return err
}

func writeFixJSON(cmd *cobra.Command, doc *audit.FixDocument) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
