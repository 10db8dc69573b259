package benchreport

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseSample(t *testing.T) *Run {
	t.Helper()
	f, err := os.Open("testdata/bench-sample.txt")
	require.NoError(t, err)
	defer f.Close()
	run, err := Parse(f)
	require.NoError(t, err)
	return run
}

func TestParse(t *testing.T) {
	t.Parallel()
	run := parseSample(t)
	assert.Equal(t, "linux", run.Goos)
	assert.Equal(t, "AMD EPYC", run.CPU)
	var names []string
	for _, r := range run.Results {
		names = append(names, r.Name)
	}
	assert.Equal(t, []string{
		"BenchmarkImportUsers", "BenchmarkTriggers",
		"BenchmarkRender", "BenchmarkRenderContent", "BenchmarkParse",
		"BenchmarkWebhooks/status", "BenchmarkWebhooks/inbound",
		"BenchmarkEndToEnd", "BenchmarkLagSteady5000",
		"BenchmarkSegmentCount1M/six-leaf/users=1000000", "BenchmarkSegmentCount1M/attr-eq/users=1000000",
		"BenchmarkSenderLimit80",
	}, names)
	assert.Equal(t, []string{"BenchmarkRebuild", "herald/projections"}, run.Failed)
	assert.Len(t, run.Commands, 2)

	tests := []struct {
		bench, unit string
		want        float64
		iterations  int
		pkg         string
	}{
		{"BenchmarkImportUsers", "s_end_to_end", 115.0, 1, "herald/commands/ingest"},
		{"BenchmarkImportUsers", "ns/op", 115048189949, 1, "herald/commands/ingest"},
		{"BenchmarkRender", "renders/s", 1298532, 1000000, "herald/commands/template"},
		{"BenchmarkWebhooks/status", "p99-ms", 48.5, 1, "herald/handlers/twilio"}, // name, log, then values
		{"BenchmarkWebhooks/inbound", "req/s", 2150, 1, "herald/handlers/twilio"}, // name alone, log, values
		{"BenchmarkSegmentCount1M/six-leaf/users=1000000", "p50_ms", 295, 5, "herald/projections/segment"},
	}
	for _, tt := range tests {
		t.Run(tt.bench+" "+tt.unit, func(t *testing.T) {
			for _, r := range run.Results {
				if r.Name == tt.bench {
					v, ok := r.Metric(tt.unit)
					require.True(t, ok)
					assert.InDelta(t, tt.want, v, 1e-9)
					assert.Equal(t, tt.iterations, r.Iterations)
					assert.Equal(t, tt.pkg, r.Pkg)
					assert.Equal(t, 2, r.Procs)
					return
				}
			}
			t.Fatalf("%s not parsed", tt.bench)
		})
	}
}

func TestParseRefusesBrokenValues(t *testing.T) {
	t.Parallel()
	_, err := Parse(strings.NewReader("pkg: herald/x\nBenchmarkX-2 \t 1\t 12 ns/op 7\n"))
	assert.ErrorContains(t, err, "line 2")
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	run := parseSample(t)
	want := map[string]Verdict{
		"BenchmarkImportUsers":                           Fail, // 115 s > 60 s
		"BenchmarkTriggers":                              Pass,
		"BenchmarkRender":                                Pass,
		"BenchmarkWebhooks/status":                       Pass,
		"BenchmarkWebhooks/inbound":                      Fail,
		"BenchmarkEndToEnd":                              Fail,
		"BenchmarkLagSteady5000":                         Fail,
		"BenchmarkRebuild":                               NotRun, // failed
		"BenchmarkSegmentCount1M/six-leaf/users=1000000": Pass,
		"BenchmarkSenderLimit80":                         Fail, // 81 in one second
		"BenchmarkAppendBulk":                            NotRun,
	}
	for _, tg := range Targets {
		w, ok := want[tg.Bench]
		if !ok {
			continue
		}
		got, _ := tg.Evaluate(run)
		assert.Equal(t, w, got, tg.Bench)
	}
}

func TestFormatValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]string{
		1298532: "1,298,532", 115.04: "115", 48.5: "48.5", 9.1: "9.10", 0.04: "0.04", 0: "0", 100000: "100,000", -1500: "-1,500",
	} {
		assert.Equal(t, want, FormatValue(in), "%v", in)
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	r := Report{Run: parseSample(t), Date: time.Date(2026, 11, 27, 4, 30, 0, 0, time.UTC), Commit: "abc123", Full: true,
		Command: "make bench", Machine: Machine{CPU: "AMD EPYC 7B13", Cores: 2, RAM: "7.8 GiB", Go: "go1.26", Postgres: "PostgreSQL 15.20", Redis: "7.0.15"}}
	var b bytes.Buffer
	require.NoError(t, r.Write(&b))
	md := b.String()
	for _, want := range []string{
		"- **Date**: 2026-11-27 04:30 UTC",
		"- **Commit**: `abc123`",
		"```sh\nHERALD_BENCH_FULL=1 go test -run '^$' -bench . -benchtime=1x ./...\ngo test -run '^$' -bench '^(BenchmarkRender)$' -cpu 1 ./commands/...\n```",
		"| CPU | AMD EPYC 7B13 |",
		"| PostgreSQL | PostgreSQL 15.20 |",
		"| #3 | `BenchmarkWebhooks/status` (`handlers/twilio`) | signed status callbacks, 64 connections: ≥ 5,000/s, p99 ≤ 50 ms, projections caught up ≤ 1 s | 5,812 req/s; 48.5 p99-ms; 0.04 catchup-s | ✓ pass |",
		"| #5 | `BenchmarkImportUsers` (`commands/ingest`) | 1,000,000-row CSV imported end to end: ≤ 60 s, peak RSS ≤ 500 MiB | 115 s_end_to_end; 304 peak_RSS_MiB | ✗ fail |",
		"| #2 | `BenchmarkRebuild` | rebuild: ≥ 50,000 events/s | — | not run |",
		"**Failed** (see bench.out): `BenchmarkRebuild`, `herald/projections`",
		"### `herald/commands/template`",
		"| `BenchmarkRender` | 1000000 | 770 ns/op, 1,298,532 renders/s |",
	} {
		assert.Contains(t, md, want)
	}
	assert.Regexp(t, `\d+ passed, \d+ failed, \d+ not run\.`, md)

	// A small run shows the figures without judging them.
	r.Full = false
	b.Reset()
	require.NoError(t, r.Write(&b))
	assert.Contains(t, b.String(), "| 5,812 req/s; 48.5 p99-ms; 0.04 catchup-s | not judged (small size) |")
	assert.NotContains(t, b.String(), "✓ pass")
}
