package benchreport

import (
	"fmt"
	"math"
	"strconv"
)

// Check is one figure a target bounds: the value reported with Unit must be at least Min
// and/or at most Max (NaN: no bound on that side).
type Check struct {
	Unit     string
	Min, Max float64
}

// Target is what an issue asked of one benchmark.
type Target struct {
	Issue  string  // "#2"
	Bench  string  // name without -GOMAXPROCS: BenchmarkWebhooks/status
	Text   string  // the target in the issue's words
	Checks []Check // all must hold
}

var none = math.NaN()

func atLeast(unit string, v float64) Check { return Check{Unit: unit, Min: v, Max: none} }
func atMost(unit string, v float64) Check  { return Check{Unit: unit, Min: none, Max: v} }

// Targets are the performance targets of issues #2–#6, in issue order. Only full-size runs
// (HERALD_BENCH_FULL=1) measure what the targets are about.
var Targets = []Target{
	{Issue: "#2", Bench: "BenchmarkAppendConcurrent32", Text: "single-event appends, 32 writers: ≥ 5,000 events/s",
		Checks: []Check{atLeast("events/s", 5000)}},
	{Issue: "#2", Bench: "BenchmarkAppendBulk", Text: "bulk append of 1,000,000 events: ≥ 40,000 events/s and ≥ 80% of raw COPY",
		Checks: []Check{atLeast("events/s", 40000), atLeast("ratio_to_raw_copy", 0.8)}},
	{Issue: "#2", Bench: "BenchmarkEndToEnd", Text: "append → applied in every projection, 1,000,000 events: ≥ 20,000 events/s",
		Checks: []Check{atLeast("events/s", 20000)}},
	{Issue: "#2", Bench: "BenchmarkLagSteady5000", Text: "projection lag at a steady 5,000 events/s: p99 < 1 s",
		Checks: []Check{atMost("p99-ms", 1000)}},
	{Issue: "#2", Bench: "BenchmarkRebuild", Text: "rebuild: ≥ 50,000 events/s",
		Checks: []Check{atLeast("events/s", 50000)}},
	{Issue: "#3", Bench: "BenchmarkWebhooks/status", Text: "signed status callbacks, 64 connections: ≥ 5,000/s, p99 ≤ 50 ms, projections caught up ≤ 1 s",
		Checks: []Check{atLeast("req/s", 5000), atMost("p99-ms", 50), atMost("catchup-s", 1)}},
	{Issue: "#3", Bench: "BenchmarkWebhooks/inbound", Text: "signed inbound messages, 64 connections: ≥ 3,000/s, p99 ≤ 50 ms, projections caught up ≤ 1 s",
		Checks: []Check{atLeast("req/s", 3000), atMost("p99-ms", 50), atMost("catchup-s", 1)}},
	{Issue: "#4", Bench: "BenchmarkSegmentCount1M/six-leaf/users=1000000", Text: "six-leaf segment, count + 100-row sample over 1,000,000 users: p50 ≤ 300 ms",
		Checks: []Check{atMost("p50_ms", 300)}},
	{Issue: "#4", Bench: "BenchmarkRender", Text: "template render on one core: ≥ 200,000 renders/s",
		Checks: []Check{atLeast("renders/s", 200000)}},
	{Issue: "#5", Bench: "BenchmarkImportUsers", Text: "1,000,000-row CSV imported end to end: ≤ 60 s, peak RSS ≤ 500 MiB",
		Checks: []Check{atMost("s_end_to_end", 60), atMost("peak_RSS_MiB", 500)}},
	{Issue: "#5", Bench: "BenchmarkTriggers", Text: "100,000 trigger lines validated and accepted: ≤ 10 s",
		Checks: []Check{atMost("s_total", 10)}},
	{Issue: "#6", Bench: "BenchmarkMaterialize", Text: "1,000,000-recipient campaign materialized (queued + projected): ≤ 60 s",
		Checks: []Check{atMost("s_total", 60)}},
	{Issue: "#6", Bench: "BenchmarkSendPipeline", Text: "send pipeline, no rate limit, zero-latency simulator: ≥ 1,000 messages/s",
		Checks: []Check{atLeast("msgs/s", 1000)}},
	{Issue: "#6", Bench: "BenchmarkSenderLimit80", Text: "rate-limited at 80/s: within 5% of 80, never above 80 in any 1 s window",
		Checks: []Check{{Unit: "msgs/s", Min: 76, Max: 84}, atMost("max_per_1s_window", 80)}},
}

// Verdict of a target against a run.
type Verdict int

const (
	NotRun Verdict = iota // the benchmark is not in the output (or lacks a checked figure)
	Pass
	Fail
)

func (v Verdict) String() string {
	switch v {
	case Pass:
		return "✓ pass"
	case Fail:
		return "✗ fail"
	}
	return "not run"
}

// Evaluate finds the target's benchmark in run (its last result, if it ran more than once)
// and checks every bound. It returns the result it judged, if any.
func (t Target) Evaluate(run *Run) (Verdict, *Result) {
	var res *Result
	for i := range run.Results {
		if run.Results[i].Name == t.Bench {
			res = &run.Results[i]
		}
	}
	if res == nil {
		return NotRun, nil
	}
	verdict := Pass
	for _, c := range t.Checks {
		v, ok := res.Metric(c.Unit)
		switch {
		case !ok:
			return NotRun, res
		case !math.IsNaN(c.Min) && v < c.Min, !math.IsNaN(c.Max) && v > c.Max:
			verdict = Fail
		}
	}
	return verdict, res
}

// Figures lists the checked figures of res as "value unit" (e.g. "5,812 req/s; 24.1 p99-ms").
func (t Target) Figures(res *Result) string {
	s := ""
	for i, c := range t.Checks {
		if i > 0 {
			s += "; "
		}
		if v, ok := res.Metric(c.Unit); ok {
			s += FormatValue(v) + " " + c.Unit
		} else {
			s += "no " + c.Unit
		}
	}
	return s
}

// FormatValue prints a figure for people: thousands separated, three significant digits
// below 100.
func FormatValue(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100 || v == math.Trunc(v):
		return groupThousands(strconv.FormatFloat(math.Round(v), 'f', -1, 64))
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func groupThousands(s string) string {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
