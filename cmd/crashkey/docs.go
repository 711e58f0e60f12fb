package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/crashkey/crashkey/internal/buildinfo"
)

func init() { register(newDocsCmd) }

func newDocsCmd() *cobra.Command {
	var manDir, mdDir string
	cmd := &cobra.Command{
		Use:   "docs (--man DIR | --markdown DIR)",
		Short: "Write man pages or Markdown pages for every command",
		Long: `Write a man page (section 1: crashkey.1, crashkey-run.1, …) or a Markdown page
(crashkey.md, crashkey_run.md, …) for every command into DIR, generated from the commands'
own help. The pages' date is SOURCE_DATE_EPOCH when set (reproducible builds), else the
commit time recorded in the binary, else today.

Exit: 0 written; 2 bad input; 3 DIR not writable.`,
		Example: `  crashkey docs --man /usr/local/share/man/man1 && mandb -q
  crashkey docs --markdown docs/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (manDir == "") == (mdDir == "") {
				return usageErr(errors.New("docs: give --man DIR or --markdown DIR"))
			}
			root := cmd.Root()
			if manDir != "" {
				date, err := docsDate()
				if err != nil {
					return usageErr(err)
				}
				if err := os.MkdirAll(manDir, 0o755); err != nil {
					return failedErr(fmt.Errorf("docs: %w", err))
				}
				hdr := &doc.GenManHeader{Title: "CRASHKEY", Section: "1", Date: &date,
					Source: "crashkey " + buildinfo.Read().Version, Manual: "crashkey manual"}
				if err := doc.GenManTree(root, hdr, manDir); err != nil {
					return failedErr(fmt.Errorf("docs: %w", err))
				}
				return nil
			}
			if err := os.MkdirAll(mdDir, 0o755); err != nil {
				return failedErr(fmt.Errorf("docs: %w", err))
			}
			if err := doc.GenMarkdownTree(root, mdDir); err != nil {
				return failedErr(fmt.Errorf("docs: %w", err))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&manDir, "man", "", "write man pages (section 1) into DIR")
	cmd.Flags().StringVar(&mdDir, "markdown", "", "write Markdown pages into DIR")
	return cmd
}

// docsDate is the date written into man pages: SOURCE_DATE_EPOCH, the commit time, or now.
func docsDate() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, fmt.Errorf("docs: SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, buildinfo.Read().Time); err == nil {
		return t.UTC(), nil
	}
	return time.Now().UTC(), nil
}
