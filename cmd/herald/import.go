package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"herald/commands/ingest"
	"herald/events"
	"herald/events/store"
)

const importUsage = `usage: herald import users [--mode=merge|replace] [--region=PE] [--format=csv|json|ndjson] [--json] FILE
       herald import triggers [--json] FILE

users reads a CSV file (a header row; a phone column), a JSON array or NDJSON of users and
imports them in batches, printing progress on a terminal; triggers reads NDJSON trigger events.
Both print the report (--json: the whole report as JSON on stdout). FILE - reads stdin.`

// importCmd runs `herald import users|triggers FILE` against DATABASE_URL directly (no API);
// the projections of a running `herald serve` apply what it appends.
func importCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "users" && args[0] != "triggers") {
		fmt.Fprintln(stderr, importUsage)
		return errors.New("import: say users or triggers")
	}
	kind := args[0]
	fs := flag.NewFlagSet("import "+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "merge", "merge or replace attributes of existing users")
	region := fs.String("region", "", "region of numbers without a country code (default HERALD_DEFAULT_REGION)")
	format := fs.String("format", "", "csv, json or ndjson (default: from the file)")
	asJSON := fs.Bool("json", false, "print the whole report as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, importUsage)
		return errors.New("import: give one FILE")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	path := fs.Arg(0)
	var (
		in   io.Reader = os.Stdin
		size int64
	)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	}
	pool, err := connectPostgres(ctx, cfg.DatabaseURL, "herald import")
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := requireMigrated(ctx, pool); err != nil {
		return err
	}
	es, err := store.New(pool, store.Config{})
	if err != nil {
		return err
	}
	defer es.Close()
	registry := events.DefaultRegistry()
	md := events.Metadata{Actor: "cli", Source: "cli"}
	counted := &countingReader{r: in}

	if kind == "triggers" {
		tr, err := ingest.NewTriggers(es, registry, ingest.TriggersConfig{})
		if err != nil {
			return err
		}
		start := time.Now()
		rep, err := tr.Process(ctx, counted, md)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(rep)
		}
		fmt.Fprintf(stdout, "%d lines in %s: %d accepted (%d recipients), %d duplicates, %d rejected\n",
			rep.Lines, time.Since(start).Round(time.Millisecond), rep.Accepted, rep.Recipients, rep.Duplicates, rep.Rejected)
		for _, r := range rep.Rejections {
			if r.Field != "" {
				r.Detail = r.Field + ": " + r.Detail
			}
			fmt.Fprintf(stdout, "  line %d: %s: %s\n", r.Line, r.Code, r.Detail)
		}
		return nil
	}

	im, err := ingest.NewImporter(es, registry, ingest.Config{DefaultRegion: cfg.DefaultRegion})
	if err != nil {
		return err
	}
	spec := ingest.Spec{Mode: *mode, Region: *region, Format: *format, Source: filepath.Base(path), Metadata: md}
	start := time.Now()
	progress := newProgress(stderr, size, counted, start)
	rep, err := im.Run(ctx, spec, counted, progress.update)
	progress.done()
	if err != nil {
		var se *ingest.SpecError
		if errors.As(err, &se) {
			return fmt.Errorf("import: --%s: %s", se.Field, se.Reason)
		}
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	t := rep.Totals
	fmt.Fprintf(stdout, "import %s %s in %s (%.0f rows/s)\n", rep.ID, rep.Status, rep.Duration.Round(time.Millisecond), rep.RowsPerSecond())
	if rep.Error != "" {
		fmt.Fprintf(stdout, "  error: %s\n", rep.Error)
	}
	fmt.Fprintf(stdout, "  rows %d: accepted %d (created %d, updated %d, unchanged %d, merged duplicates %d), rejected %d, blank %d\n",
		t.RowsRead, t.Accepted, t.Created, t.Updated, t.Unchanged, t.Merged, t.Rejected, t.BlankRows)
	fmt.Fprintf(stdout, "  rejected by reason %v; warnings %d %v; consent conflicts %d\n  countries %v\n",
		t.RejectedBy, t.Warnings, t.WarningsBy, t.ConsentConflicts, t.Countries)
	for i, r := range rep.Rejections {
		if i == 20 {
			fmt.Fprintf(stdout, "  … the full list: GET /v1/imports/%s/rejections.csv\n", rep.ID)
			break
		}
		fmt.Fprintf(stdout, "  row %d: %s %q %s\n", r.Row, r.Code, r.Value, r.Detail)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// progress draws one line on a terminal: rows, rows/s, bytes and ETA.
type progress struct {
	w     io.Writer
	tty   bool
	size  int64
	read  *countingReader
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, size int64, read *countingReader, start time.Time) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: w, tty: tty, size: size, read: read, start: start}
}

func (p *progress) update(t events.ImportCounts) {
	if !p.tty || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start).Seconds()
	rate := float64(t.RowsRead) / max(el, 1e-9)
	line := fmt.Sprintf("\r%d rows  %.0f rows/s  %d rejected", t.RowsRead, rate, t.Rejected)
	if n := p.read.n.Load(); p.size > 0 && n > 0 {
		frac := float64(n) / float64(p.size)
		eta := time.Duration(el/frac*(1-frac)) * time.Second
		bar := int(frac * 20)
		line += fmt.Sprintf("  [%-20s] %3.0f%%  ETA %s", string([]rune("####################")[:min(bar, 20)]), frac*100, eta.Round(time.Second))
	}
	fmt.Fprint(p.w, line+"   ")
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
