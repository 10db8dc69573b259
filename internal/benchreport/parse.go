// Package benchreport turns the output of `go test -bench` (what `make bench` writes to
// bench.out) into docs/benchmarks.md: every figure, the machine it ran on, and each figure next
// to the target its issue set, passed or failed.
package benchreport

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Metric is one value a benchmark reported: ns/op, B/op or a b.ReportMetric unit (events/s,
// p99-ms, …).
type Metric struct {
	Value float64
	Unit  string
}

// Result is one benchmark result line.
type Result struct {
	Pkg        string // import path, from the "pkg:" line before it
	Name       string // without the -GOMAXPROCS suffix: BenchmarkWebhooks/status
	Procs      int
	Iterations int
	Metrics    []Metric
}

// Metric returns the value reported with unit.
func (r Result) Metric(unit string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

// Run is one `go test -bench` output: its results in order and what failed.
type Run struct {
	Goos, Goarch, CPU string
	Results           []Result
	// Failed lists failed benchmarks (--- FAIL: name) and packages (FAIL <pkg>).
	Failed []string
	// Commands are the commands that produced the output, from "# command: …" lines (the
	// lines .ci/bench writes before each go test).
	Commands []string
}

var (
	// A result: name, iterations, then value-unit pairs.
	resultLine = regexp.MustCompile(`^(Benchmark\S+)\s+(\d+)\s+(.+)$`)
	// A result whose name went out before the benchmark logged to the same stream: the
	// name alone (or followed by a log line), then, on a later line, the iterations and values.
	nameOnly   = regexp.MustCompile(`^(Benchmark\S+?)\s*$`)
	valuesOnly = regexp.MustCompile(`^\s*(\d+)\s+(-?[0-9.]+(?:e[+-]?\d+)?\s+\S+.*)$`)
	procs      = regexp.MustCompile(`^(.+)-(\d+)$`)
	failLine   = regexp.MustCompile(`^\s*--- FAIL: (\S+)`)
	failPkg    = regexp.MustCompile(`^FAIL\s+(\S+)`)
)

// Parse reads `go test -bench` output. Lines it does not know (logs, PASS, ok) are skipped; a
// result line whose values are not value-unit pairs is an error naming the line.
func Parse(r io.Reader) (*Run, error) {
	run := &Run{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	pkg, pending := "", ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "# command: "):
			run.Commands = append(run.Commands, strings.TrimPrefix(line, "# command: "))
			continue
		case strings.HasPrefix(line, "pkg: "):
			pkg, pending = strings.TrimSpace(line[5:]), ""
			continue
		case strings.HasPrefix(line, "goos: "):
			run.Goos = strings.TrimSpace(line[6:])
			continue
		case strings.HasPrefix(line, "goarch: "):
			run.Goarch = strings.TrimSpace(line[8:])
			continue
		case strings.HasPrefix(line, "cpu: "):
			run.CPU = strings.TrimSpace(line[5:])
			continue
		}
		if m := failLine.FindStringSubmatch(line); m != nil {
			run.Failed = append(run.Failed, stripProcs(m[1]))
			continue
		}
		if m := failPkg.FindStringSubmatch(line); m != nil {
			run.Failed = append(run.Failed, m[1])
			continue
		}
		name, iters, values := "", "", ""
		if m := resultLine.FindStringSubmatch(line); m != nil && looksLikeValues(m[3]) {
			name, iters, values = m[1], m[2], m[3]
		} else if m := nameOnly.FindStringSubmatch(line); m != nil {
			pending = m[1]
			continue
		} else if strings.HasPrefix(line, "Benchmark") {
			pending = strings.Fields(line)[0] // the name, then a log line the benchmark wrote
			continue
		} else if m := valuesOnly.FindStringSubmatch(line); m != nil && pending != "" {
			name, iters, values = pending, m[1], m[2]
		} else {
			continue
		}
		pending = ""
		res, err := result(pkg, name, iters, values)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		run.Results = append(run.Results, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	return run, nil
}

// looksLikeValues: the text after the iterations starts with a number and a unit.
func looksLikeValues(s string) bool {
	f := strings.Fields(s)
	if len(f) < 2 {
		return false
	}
	_, err := strconv.ParseFloat(f[0], 64)
	return err == nil
}

func result(pkg, name, iters, values string) (Result, error) {
	res := Result{Pkg: pkg, Name: stripProcs(name), Procs: 1}
	if m := procs.FindStringSubmatch(name); m != nil {
		res.Procs, _ = strconv.Atoi(m[2])
	}
	var err error
	if res.Iterations, err = strconv.Atoi(iters); err != nil {
		return Result{}, fmt.Errorf("%s: iterations %q: %w", name, iters, err)
	}
	f := strings.Fields(values)
	if len(f)%2 != 0 {
		return Result{}, fmt.Errorf("%s: %q is not value-unit pairs", name, values)
	}
	for i := 0; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, fmt.Errorf("%s: value %q: %w", name, f[i], err)
		}
		res.Metrics = append(res.Metrics, Metric{Value: v, Unit: f[i+1]})
	}
	return res, nil
}

// stripProcs drops the -GOMAXPROCS suffix go test adds to a benchmark's name.
func stripProcs(name string) string {
	if m := procs.FindStringSubmatch(name); m != nil {
		return m[1]
	}
	return name
}
