package main

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/vm"
)

// --debug and --log-format, on every command: structured logs through log/slog to stderr
// (every QMP and guest agent command and reply, libvirt call and disk-layer decision, with
// timings). CRASHKEY_DEBUG=1 turns them on too.

func init() {
	rootHooks = append(rootHooks, func(root *cobra.Command) {
		var (
			debug     bool
			logFormat string
		)
		pf := root.PersistentFlags()
		pf.BoolVar(&debug, "debug", false, "log every QMP, libvirt and agent call and disk decision to stderr with timings (also CRASHKEY_DEBUG=1)")
		pf.StringVar(&logFormat, "log-format", "text", "debug log format: text or json")
		root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
			on := debug || os.Getenv("CRASHKEY_DEBUG") == "1"
			if logFormat != "text" && logFormat != "json" {
				return usageErr(fmt.Errorf("--log-format %q: use text or json", logFormat))
			}
			if on {
				slog.SetDefault(slog.New(newDebugHandler(cmd.ErrOrStderr(), logFormat)))
				slog.Debug("crashkey start", "command", cmd.CommandPath())
			}
			for _, h := range preRunHooks {
				if err := h(cmd); err != nil {
					return err
				}
			}
			return nil
		}
	})
}

// preRunHooks run before every command, after logging is set up (target shorthands).
var preRunHooks []func(cmd *cobra.Command) error

// saveLogging returns a function that restores slog's default logger and the log package's
// output and flags (slog.SetDefault redirects the log package too, and setting the original
// default back does not undo that).
func saveLogging() func() {
	prev, w, flags := slog.Default(), log.Writer(), log.Flags()
	return func() {
		slog.SetDefault(prev)
		log.SetOutput(w)
		log.SetFlags(flags)
	}
}

// newDebugHandler is the handler --debug installs: level Debug, on w, every string value
// passed through vm.RedactText so that no URI password slips through, whatever logs it.
func newDebugHandler(w io.Writer, format string) slog.Handler {
	opts := &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindString {
				a.Value = slog.StringValue(vm.RedactText(a.Value.String()))
			}
			return a
		},
	}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}
