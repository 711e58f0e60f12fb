// Command gen writes package layout's table (tables_gen.go) from xkeyboard-config's symbol
// files and X11's keysymdef.h (Debian packages xkb-data and x11proto-dev, installed by
// scripts/deps.sh). Run it with go generate ./scancodes/layout.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/crashkey/crashkey/internal/atomicfile"
	"github.com/crashkey/crashkey/scancodes/layout/internal/xkb"
)

func main() {
	o := xkb.DefaultOptions
	out := flag.String("o", "tables_gen.go", "output file")
	flag.StringVar(&o.Root, "xkb", o.Root, "xkb data directory (xkb-data)")
	flag.StringVar(&o.Keysymdef, "keysymdef", o.Keysymdef, "X11 keysymdef.h (x11proto-dev)")
	flag.Parse()
	src, skipped, err := xkb.Generate(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for _, s := range skipped {
		slog.Debug("skipped", "layout", s)
	}
	if err := atomicfile.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gen: wrote %s (%d bytes; %d names skipped)\n", *out, len(src), len(skipped))
}
