package benchreport

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Machine is what the benchmarks ran on.
type Machine struct {
	CPU      string // model name
	Cores    int
	RAM      string // e.g. "7.8 GiB"
	OS       string // kernel and distribution
	Go       string
	Postgres string
	Redis    string
}

// Report is everything docs/benchmarks.md shows.
type Report struct {
	Run     *Run
	Machine Machine
	Date    time.Time
	Commit  string // hash, with "(dirty)" when the tree had changes
	Command string // how the figures were produced, when the output does not say (Run.Commands)
	Full    bool   // HERALD_BENCH_FULL=1: the sizes the targets are about
}

// Write renders the report as Markdown.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Benchmarks\n\n")
	p("Written by `make bench` (`cmd/benchreport` reading `bench.out`); do not edit by hand: run\n")
	p("`make bench` again. The system benchmarks run once each (`-benchtime=1x`: one iteration is a\n")
	p("whole run) against the real PostgreSQL and Redis on this machine; the micro benchmarks run for\n")
	p("a second on one core. [testing.md](testing.md#benchmarks) says what each measures.\n\n")
	p("- **Date**: %s\n", r.Date.UTC().Format("2006-01-02 15:04 MST"))
	p("- **Commit**: `%s`\n", r.Commit)
	commands := r.Run.Commands
	if len(commands) == 0 {
		commands = []string{r.Command}
	}
	p("- **Commands** (`make bench` runs `.ci/bench`, which runs these):\n\n```sh\n%s\n```\n\n", strings.Join(commands, "\n"))
	if r.Full {
		p("- **Size**: full (`HERALD_BENCH_FULL=1`): the sizes the targets are about\n")
	} else {
		p("- **Size**: small (`HERALD_BENCH_FULL` not set): the figures do not measure the targets\n")
	}
	p("\n## Machine\n\n| | |\n|---|---|\n")
	m := r.Machine
	cpu := m.CPU
	if cpu == "" {
		cpu = r.Run.CPU
	}
	for _, row := range [][2]string{
		{"CPU", cpu}, {"Cores", fmt.Sprint(m.Cores)}, {"RAM", m.RAM}, {"OS", m.OS},
		{"Go", m.Go}, {"PostgreSQL", m.Postgres}, {"Redis", m.Redis},
	} {
		p("| %s | %s |\n", row[0], cell(row[1]))
	}

	p("\n## Targets\n\n")
	p("The performance targets of the earlier issues, each next to the figures that decide it.\n\n")
	p("| issue | benchmark | target | measured | result |\n|---|---|---|---|---|\n")
	passed, failed, missing := 0, 0, 0
	for _, t := range Targets {
		v, res := t.Evaluate(r.Run)
		measured := "—"
		bench := "`" + t.Bench + "`"
		if res != nil {
			measured = t.Figures(res)
			bench += " (`" + strings.TrimPrefix(res.Pkg, "herald/") + "`)"
		}
		verdict := v.String()
		switch {
		case v == NotRun:
			missing++
		case !r.Full:
			verdict = "not judged (small size)"
		case v == Pass:
			passed++
		default:
			failed++
		}
		p("| %s | %s | %s | %s | %s |\n", t.Issue, bench, cell(t.Text), cell(measured), verdict)
	}
	if r.Full {
		p("\n%d passed, %d failed, %d not run.\n", passed, failed, missing)
	} else {
		p("\nA small run: the figures are shown but not judged against the targets.\n")
	}
	if len(r.Run.Failed) > 0 {
		p("\n**Failed** (see bench.out): %s\n", "`"+strings.Join(r.Run.Failed, "`, `")+"`")
	}

	p("\n## Every figure\n\n")
	p("All the values each benchmark reported (`b.ReportMetric` units as printed; `ns/op` is the\n")
	p("whole iteration).\n")
	byPkg := map[string][]Result{}
	var pkgs []string
	for _, res := range r.Run.Results {
		if _, ok := byPkg[res.Pkg]; !ok {
			pkgs = append(pkgs, res.Pkg)
		}
		byPkg[res.Pkg] = append(byPkg[res.Pkg], res)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		p("\n### `%s`\n\n| benchmark | iterations | figures |\n|---|---|---|\n", pkg)
		for _, res := range byPkg[pkg] {
			var figs []string
			for _, m := range res.Metrics {
				figs = append(figs, FormatValue(m.Value)+" "+m.Unit)
			}
			p("| `%s` | %d | %s |\n", res.Name, res.Iterations, cell(strings.Join(figs, ", ")))
		}
	}
	p("\nTo run one benchmark: `HERALD_BENCH_FULL=1 flock /tmp/herald-bench.lock go test -run '^$' -bench '^BenchmarkName$' -benchtime=1x ./pkg`.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	if s == "" {
		return "—"
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}
