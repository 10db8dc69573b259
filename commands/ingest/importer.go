// Package ingest takes users in bulk (CSV, a JSON array or NDJSON) and trigger events (NDJSON)
// into Herald. A users import streams the file: rows are read, validated and normalized one at
// a time, gathered into batches, merged with the rows of the same phone seen before and with
// the users that exist, and appended as user.* events with AppendBulk; the import's own stream
// records each batch (counts, rejections, warnings, merges) and the totals, which the imports
// projection turns into the data-quality report. Memory depends on the batch size and on the
// number of distinct phones (8 bytes each, to merge duplicates), never on the file's size.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"herald/commands"
	"herald/events"
	"herald/events/store"
)

// Config tunes an Importer.
type Config struct {
	// BatchSize is how many rows are decided and appended together (default 5,000).
	BatchSize int
	// DefaultRegion reads phone numbers written without a country code (HERALD_DEFAULT_REGION);
	// an import may name its own.
	DefaultRegion string
	// MaxReportIssues caps the issues Run returns in its Report (default 1,000); every issue is
	// in the import's events either way.
	MaxReportIssues int
}

func (c Config) withDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = 5000
	}
	if c.MaxReportIssues == 0 {
		c.MaxReportIssues = 1000
	}
	c.DefaultRegion = strings.ToUpper(c.DefaultRegion)
	return c
}

// Validate lists every problem; zero values stand for their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 50_000 {
		errs = append(errs, fmt.Errorf("ingest: BatchSize must be 1..50000, got %d", c.BatchSize))
	}
	if c.MaxReportIssues < 0 {
		errs = append(errs, errors.New("ingest: MaxReportIssues must be ≥ 0"))
	}
	if c.DefaultRegion != "" && !validRegion(c.DefaultRegion) {
		errs = append(errs, fmt.Errorf("ingest: DefaultRegion %q is not a region with phone numbers", c.DefaultRegion))
	}
	return errors.Join(errs...)
}

// Importer runs users imports.
type Importer struct {
	cfg      Config
	store    *store.Store
	registry *events.Registry
	zones    zoneCache
	now      func() time.Time
}

// NewImporter checks cfg and wires an Importer.
func NewImporter(s *store.Store, registry *events.Registry, cfg Config) (*Importer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	phones, err := commands.NewPhoneClassifier()
	if err != nil {
		return nil, err
	}
	im := &Importer{cfg: cfg.withDefaults(), store: s, registry: registry, now: time.Now}
	im.zones.phones = phones
	return im, nil
}

// Spec describes one import.
type Spec struct {
	// ID names the import (a UUID); empty gives a new one.
	ID string
	// Format is csv, json or ndjson; empty sniffs it.
	Format string
	// Mode is merge (default: the file's attributes are merged into existing users') or
	// replace (they become the users' whole attribute set).
	Mode string
	// Region reads numbers without a country code; empty uses Config.DefaultRegion.
	Region string
	// Source names the file, for the report.
	Source   string
	Metadata events.Metadata
}

// SpecError says what is wrong with a Spec.
type SpecError struct{ Field, Reason string }

func (e *SpecError) Error() string { return "import: " + e.Field + ": " + e.Reason }

// Check normalizes and validates the spec (a new ID when it has none).
func (s *Spec) Check(cfg Config) error {
	if s.ID == "" {
		s.ID = uuid.NewString()
	} else if _, err := uuid.Parse(s.ID); err != nil {
		return &SpecError{Field: "id", Reason: "must be a UUID"}
	}
	switch s.Mode {
	case "":
		s.Mode = events.AttributesMerge
	case events.AttributesMerge, events.AttributesReplace:
	default:
		return &SpecError{Field: "mode", Reason: "must be merge or replace"}
	}
	switch s.Format {
	case "", FormatCSV, FormatJSON, FormatNDJSON:
	default:
		return &SpecError{Field: "format", Reason: "must be csv, json or ndjson"}
	}
	s.Region = strings.ToUpper(strings.TrimSpace(s.Region))
	if s.Region == "" {
		s.Region = strings.ToUpper(cfg.DefaultRegion)
	} else if !validRegion(s.Region) {
		return &SpecError{Field: "region", Reason: fmt.Sprintf("%q is not a region with phone numbers (ISO 3166 alpha-2, e.g. PE)", s.Region)}
	}
	return nil
}

// Report is what an import did.
type Report struct {
	ID      string              `json:"id"`
	Status  string              `json:"status"`
	Error   string              `json:"error,omitempty"`
	Format  string              `json:"format"`
	Mode    string              `json:"mode"`
	Region  string              `json:"region,omitempty"`
	Source  string              `json:"source,omitempty"`
	Totals  events.ImportCounts `json:"totals"`
	Columns map[string]string   `json:"columns,omitempty"`
	// The first MaxReportIssues of each kind.
	Rejections []events.ImportIssue `json:"rejections"`
	Warnings   []events.ImportIssue `json:"warnings"`
	Merges     []events.ImportIssue `json:"merges"`
	StartedAt  time.Time            `json:"started_at"`
	FinishedAt time.Time            `json:"finished_at"`
	Duration   time.Duration        `json:"-"`
	// Checkpoint is the log position of the import's last event (read-your-writes).
	Checkpoint store.Checkpoint `json:"-"`
	// Timing is where the time went (not in the golden reports: it varies).
	Timing Timing `json:"-"`
}

// Timing splits an import's wall time: waiting for rows to be read and validated, reading the
// users' streams, deciding and encoding events, and appending them.
type Timing struct {
	WaitRead, Fold, Decide, WaitAppend, Append time.Duration
}

// RowsPerSecond is the import's throughput.
func (r Report) RowsPerSecond() float64 {
	return float64(r.Totals.RowsRead) / max(r.Duration.Seconds(), 1e-9)
}

// Progress is called after each batch with the totals so far.
type Progress func(totals events.ImportCounts)

// batch is a run of rows read and validated.
type batch struct {
	no         int
	first      int
	last       int
	counts     events.ImportCounts
	cands      []candidate
	rejections []events.ImportIssue
	warnings   []events.ImportIssue
}

// Start records the import's start: called before the file is read (the API answers with the
// id once it is stored). Run calls it too; a second call is an idempotent no-op.
func (im *Importer) Start(ctx context.Context, spec Spec, format string) (store.Checkpoint, error) {
	rec, err := events.NewRecord(events.DeterministicID(events.TypeImportStarted, spec.ID), events.ImportStream(spec.ID),
		events.ImportStarted{ID: spec.ID, Kind: "users", Format: format, Mode: spec.Mode, Region: spec.Region, Source: spec.Source}, spec.Metadata)
	if err != nil {
		return store.Checkpoint{}, err
	}
	res, err := im.store.Append(ctx, events.ImportStream(spec.ID), store.AnyVersion, rec)
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("import %s: start: %w", spec.ID, err)
	}
	return res.Checkpoint, nil
}

// Run imports the users of r. A file that cannot be read at all (no header, no phone column)
// ends the import as failed with the reason, as does a broken JSON array (the rows before it
// are imported). The error is only for the environment (the database, ctx); the report says
// what happened to every row either way.
func (im *Importer) Run(ctx context.Context, spec Spec, r io.Reader, progress Progress) (Report, error) {
	if err := spec.Check(im.cfg); err != nil {
		return Report{}, err
	}
	started := im.now()
	rep := Report{ID: spec.ID, Mode: spec.Mode, Region: spec.Region, Source: spec.Source, StartedAt: started.UTC(),
		Rejections: []events.ImportIssue{}, Warnings: []events.ImportIssue{}, Merges: []events.ImportIssue{}}
	rep.Totals = emptyCounts()
	rows, format, openErr := NewRowReader(r, spec.Format)
	if spec.Format != "" || format == "" {
		format = spec.Format // what Start recorded when the API started the import
	}
	rep.Format = format
	if _, err := im.Start(ctx, spec, format); err != nil {
		return rep, err
	}
	done, err := im.resumeFrom(ctx, spec.ID)
	if err != nil {
		return rep, err
	}
	if done.finished != nil {
		// Already finished (a retried job): the stored outcome stands.
		rep.Status, rep.Error, rep.Totals, rep.Columns = done.finished.Status, done.finished.Error, done.finished.Totals, done.finished.Columns
		rep.Duration = time.Duration(done.finished.DurationMs) * time.Millisecond
		rep.FinishedAt = rep.StartedAt.Add(rep.Duration)
		return rep, nil
	}
	var failure string
	if openErr != nil {
		var he *HeaderError
		if !errors.As(openErr, &he) {
			failure = openErr.Error()
		} else {
			failure = he.Reason
		}
	} else {
		rep.Columns = rows.Columns()
		var err error
		failure, err = im.process(ctx, spec, rows, &rep, progress, done.batches)
		if err != nil {
			return rep, err
		}
	}
	rep.Status = events.ImportCompleted
	if failure != "" {
		rep.Status, rep.Error = events.ImportFailed, failure
	}
	rep.FinishedAt = im.now().UTC()
	rep.Duration = rep.FinishedAt.Sub(started)
	fin := events.ImportFinished{ID: spec.ID, Status: rep.Status, Error: rep.Error, Totals: rep.Totals, Columns: rep.Columns,
		DurationMs: rep.Duration.Milliseconds()}
	rec, err := events.NewRecord(events.DeterministicID(events.TypeImportFinished, spec.ID), events.ImportStream(spec.ID), fin, spec.Metadata)
	if err != nil {
		return rep, err
	}
	res, err := im.store.Append(context.WithoutCancel(ctx), events.ImportStream(spec.ID), store.AnyVersion, rec)
	if err != nil {
		return rep, fmt.Errorf("import %s: finish: %w", spec.ID, err)
	}
	rep.Checkpoint = res.Checkpoint
	return rep, nil
}

func emptyCounts() events.ImportCounts {
	return events.ImportCounts{RejectedBy: map[string]int{}, WarningsBy: map[string]int{}, Countries: map[string]int{}}
}

// seenPhone is what an import remembers of each phone: its first row, and what its user's
// first batch did (so a later duplicate that changes an unchanged user recounts it).
type seenPhone struct {
	row     uint32
	batch   uint32 // the last batch with a row of the phone
	outcome uint8
}

const (
	outcomeCreated = iota + 1
	outcomeUpdated
	outcomeUnchanged
)

// phoneKey packs an E.164 number (at most 15 digits) into a uint64.
func phoneKey(e164 string) uint64 {
	n, _ := strconv.ParseUint(e164[1:], 10, 64)
	return n
}

// process runs three stages at once: one goroutine reads and validates batches, one merges
// each batch and decides its events (reading its users' streams), and this one appends them;
// so reading a batch's users and encoding its events overlap with appending the batch before.
// A batch with a phone of a batch not yet appended waits for that append before it reads the
// phone's stream.
func (im *Importer) process(ctx context.Context, spec Spec, rows RowReader, rep *Report, progress Progress,
	recorded map[int]events.ImportBatchProcessed) (failure string, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type read struct {
		b       *batch
		failure string
		err     error
	}
	readCh := make(chan read, 2)
	go func() {
		defer close(readCh)
		no := 0
		for {
			no++
			b, failure, err := im.readBatch(rows, no, spec.Region)
			if b != nil || failure != "" || err != nil {
				select {
				case readCh <- read{b, failure, err}:
				case <-ctx.Done():
					return
				}
			}
			if b == nil || failure != "" || err != nil {
				return
			}
		}
	}()
	type decided struct {
		b       *batch
		recs    []events.Record
		merges  []events.ImportIssue
		prev    *events.ImportBatchProcessed // recorded by an earlier run: nothing to append
		timing  Timing
		failure string
		err     error
	}
	decCh := make(chan decided, 1)
	appended := newTracker()
	go func() {
		defer close(decCh)
		seen := map[uint64]seenPhone{}
		for {
			var d decided
			waited := time.Now()
			var rd read
			var ok bool
			select {
			case rd, ok = <-readCh:
			case <-ctx.Done():
				return
			}
			d.timing.WaitRead = time.Since(waited)
			if !ok {
				return
			}
			d.b, d.failure, d.err = rd.b, rd.failure, rd.err
			if rd.b != nil {
				if prev, again := recorded[rd.b.no]; again {
					// Recorded by an earlier run of this import: remember its phones, count it as it was.
					for _, c := range rd.b.cands {
						if _, dup := seen[phoneKey(c.phone)]; !dup {
							seen[phoneKey(c.phone)] = seenPhone{row: uint32(c.num), outcome: outcomeCreated, batch: uint32(rd.b.no)}
						}
					}
					d.prev = &prev
				} else {
					var err error
					d.recs, d.merges, err = im.decideBatch(ctx, spec, rd.b, seen, appended, &d.timing)
					if err != nil {
						d.err = err
					}
				}
			}
			select {
			case decCh <- d:
			case <-ctx.Done():
				return
			}
			if d.err != nil || d.failure != "" {
				return
			}
		}
	}()
	for d := range decCh {
		rep.Timing.WaitRead += d.timing.WaitRead
		rep.Timing.Fold += d.timing.Fold
		rep.Timing.Decide += d.timing.Decide
		rep.Timing.WaitAppend += d.timing.WaitAppend
		switch {
		case d.prev != nil:
			addCounts(&rep.Totals, d.prev.Counts)
			rep.Rejections = appendCapped(rep.Rejections, d.prev.Rejections, im.cfg.MaxReportIssues)
			rep.Warnings = appendCapped(rep.Warnings, d.prev.Warnings, im.cfg.MaxReportIssues)
			rep.Merges = appendCapped(rep.Merges, d.prev.Merges, im.cfg.MaxReportIssues)
			appended.done(d.b.no)
		case d.b != nil && d.err == nil:
			t := time.Now()
			split := len(d.recs)
			for split > 0 && appendPart(d.recs[split-1]) > 0 {
				split--
			}
			var res store.BulkResult
			for _, part := range [][]events.Record{d.recs[:split], d.recs[split:]} {
				if len(part) == 0 {
					continue
				}
				r, err := im.store.AppendBulk(ctx, part)
				if err != nil {
					return "", fmt.Errorf("import %s: rows %d..%d: %w", spec.ID, d.b.first, d.b.last, err)
				}
				if res.Checkpoint.Less(r.Checkpoint) {
					res.Checkpoint = r.Checkpoint
				}
			}
			rep.Timing.Append += time.Since(t)
			appended.done(d.b.no)
			if rep.Checkpoint.Less(res.Checkpoint) {
				rep.Checkpoint = res.Checkpoint
			}
			addCounts(&rep.Totals, d.b.counts)
			rep.Rejections = appendCapped(rep.Rejections, d.b.rejections, im.cfg.MaxReportIssues)
			rep.Warnings = appendCapped(rep.Warnings, d.b.warnings, im.cfg.MaxReportIssues)
			rep.Merges = appendCapped(rep.Merges, d.merges, im.cfg.MaxReportIssues)
			if progress != nil {
				progress(rep.Totals)
			}
		}
		if d.err != nil {
			if errors.Is(d.err, ErrBrokenJSON) {
				return d.err.Error(), nil
			}
			return "", fmt.Errorf("import %s: %w", spec.ID, d.err)
		}
		if d.failure != "" {
			return d.failure, nil
		}
	}
	return "", ctx.Err()
}

// tracker is the number of the last batch appended, for a batch that must read streams the
// batches before it write.
type tracker struct {
	mu      sync.Mutex
	last    int
	changed chan struct{}
}

func newTracker() *tracker { return &tracker{changed: make(chan struct{})} }

func (t *tracker) done(no int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = max(t.last, no)
	close(t.changed)
	t.changed = make(chan struct{})
}

// wait returns once batch no is appended (batches are appended in order).
func (t *tracker) wait(ctx context.Context, no int) error {
	for {
		t.mu.Lock()
		last, ch := t.last, t.changed
		t.mu.Unlock()
		if last >= no {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// recorded is what an import's stream already holds.
type recorded struct {
	batches  map[int]events.ImportBatchProcessed
	finished *events.ImportFinished
}

// resumeFrom reads what an earlier run of the import recorded: its batches are not decided
// again (a batch is recorded after its users' events, so a recorded batch is complete).
func (im *Importer) resumeFrom(ctx context.Context, id string) (recorded, error) {
	out := recorded{batches: map[int]events.ImportBatchProcessed{}}
	envs, err := store.ReadStream(ctx, im.store.Pool(), events.ImportStream(id), 0)
	if err != nil {
		return out, fmt.Errorf("import %s: %w", id, err)
	}
	for _, env := range envs {
		e, err := im.registry.Decode(env)
		if err != nil {
			return out, fmt.Errorf("import %s: %w", id, err)
		}
		switch e := e.(type) {
		case *events.ImportBatchProcessed:
			out.batches[e.Batch] = *e
		case *events.ImportFinished:
			out.finished = e
		}
	}
	return out, nil
}

// readBatch reads up to BatchSize rows (nil at the end of the file). failure ends the file.
func (im *Importer) readBatch(rows RowReader, no int, region string) (*batch, string, error) {
	b := &batch{no: no, counts: emptyCounts()}
	var (
		read     = make([]Row, 0, im.cfg.BatchSize)
		failure  string
		readErr  error
		consumed int
	)
	for consumed < im.cfg.BatchSize {
		row, err := rows.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrBrokenJSON) {
			failure = err.Error()
			break
		}
		if err != nil {
			readErr = err
			break
		}
		consumed++
		read = append(read, row)
	}
	// Validation (mostly libphonenumber) is the costly part of reading: split it across the
	// cores, then gather the results in file order.
	type result struct {
		c        candidate
		rej      *events.ImportIssue
		warnings []events.ImportIssue
	}
	results := make([]result, len(read))
	workers := min(runtime.GOMAXPROCS(0), 4, max(1, len(read)/500))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(read); i += workers {
				if !read[i].Blank {
					results[i].c, results[i].rej, results[i].warnings = validate(read[i], region, &im.zones)
				}
			}
		}()
	}
	wg.Wait()
	b.cands = make([]candidate, 0, len(read))
	for i, row := range read {
		if b.first == 0 {
			b.first = row.Num
		}
		b.last = row.Num
		if row.Blank {
			b.counts.BlankRows++
			continue
		}
		b.counts.RowsRead++
		if rej := results[i].rej; rej != nil {
			b.rejections = append(b.rejections, *rej)
			b.counts.Rejected++
			b.counts.RejectedBy[rej.Code]++
			continue
		}
		b.cands = append(b.cands, results[i].c)
		b.warnings = append(b.warnings, results[i].warnings...)
	}
	return nonEmpty(b), failure, readErr
}

func nonEmpty(b *batch) *batch {
	if b.counts.RowsRead+b.counts.BlankRows == 0 {
		return nil
	}
	return b
}

// decideBatch merges a batch's rows, reads its users' streams and decides their events; it
// returns them with the batch's record in the import stream, and the batch's merges.
func (im *Importer) decideBatch(ctx context.Context, spec Spec, b *batch, seen map[uint64]seenPhone, appended *tracker,
	timing *Timing) ([]events.Record, []events.ImportIssue, error) {
	c := &b.counts
	c.Accepted = len(b.cands)
	// Merge the rows of one phone (file order: later non-empty values win).
	merged := map[string]*candidate{}
	var order, fresh, again []string
	earlier := map[string]bool{} // phones first seen in an earlier batch
	waitFor := 0                 // the last batch before this one that holds one of them
	var merges []events.ImportIssue
	for i := range b.cands {
		cand := b.cands[i]
		key := phoneKey(cand.phone)
		if s, dup := seen[key]; dup {
			merges = append(merges, events.ImportIssue{Row: cand.num, Code: codeMergedInto, Value: cand.phone, Into: int(s.row)})
			c.Merged++
			if int(s.batch) != b.no {
				waitFor = max(waitFor, int(s.batch))
				s.batch = uint32(b.no)
				seen[key] = s
			}
			if m := merged[cand.phone]; m != nil {
				m.merge(cand)
				continue
			}
			earlier[cand.phone] = true
			again = append(again, cand.phone)
		} else {
			seen[key] = seenPhone{row: uint32(cand.num), batch: uint32(b.no)}
			country := cand.region
			if country == "" {
				country = "unknown"
			}
			c.Countries[country]++
			fresh = append(fresh, cand.phone)
		}
		cp := cand
		merged[cand.phone] = &cp
		order = append(order, cand.phone)
	}
	source := "import:" + spec.ID
	recs := make([]events.Record, 0, len(order)+1)
	var subs []events.Record // appended after recs: see appendPart
	decideUser := func(phone string, u *user) error {
		cand := merged[phone]
		if u == nil {
			u = &user{topics: map[string]bool{}, consent: events.ConsentOptOut}
		}
		mode := spec.Mode
		if earlier[phone] {
			mode = events.AttributesMerge // the first batch already replaced; later rows add to it
		}
		evs, warnings, conflict := decide(u, cand, mode, source)
		b.warnings = append(b.warnings, warnings...)
		if conflict {
			c.ConsentConflicts++
		}
		key := phoneKey(phone)
		s := seen[key]
		switch {
		case earlier[phone]:
			if len(evs) > 0 && s.outcome == outcomeUnchanged {
				c.Unchanged--
				c.Updated++
				s.outcome = outcomeUpdated
			}
		case len(evs) == 0:
			c.Unchanged++
			s.outcome = outcomeUnchanged
		case !u.exists:
			c.Created++
			s.outcome = outcomeCreated
		default:
			c.Updated++
			s.outcome = outcomeUpdated
		}
		seen[key] = s
		stream := events.UserStream(phone)
		var idKey strings.Builder
		for i, e := range evs {
			rec, err := newRecord(uuid.Nil, stream, e, spec.Metadata) // its id is set below
			if err != nil {
				return err
			}
			// DeterministicID("import.user", phone, version, i, data), its parts joined here
			// with the same separator in one allocation: the same id.
			idKey.Reset()
			idKey.Grow(len(phone) + len(rec.Data) + 16)
			idKey.WriteString(phone)
			idKey.WriteByte('\x1f')
			idKey.WriteString(strconv.Itoa(u.version))
			idKey.WriteByte('\x1f')
			idKey.WriteString(strconv.Itoa(i))
			idKey.WriteByte('\x1f')
			idKey.Write(rec.Data)
			rec.EventID = events.DeterministicID("import.user", idKey.String())
			if appendPart(rec) == 1 {
				subs = append(subs, rec)
			} else {
				recs = append(recs, rec)
			}
		}
		return nil
	}
	// The phones new to this import first: nothing this import appends touches their streams,
	// so they are read and decided while the batch before is still being appended.
	t0 := time.Now()
	users, err := loadUsers(ctx, im.store.Pool(), im.registry, fresh)
	if err != nil {
		return nil, nil, err
	}
	t1 := time.Now()
	timing.Fold += t1.Sub(t0)
	for _, phone := range fresh {
		if err := decideUser(phone, users[phone]); err != nil {
			return nil, nil, err
		}
	}
	t2 := time.Now()
	timing.Decide += t2.Sub(t1)
	if len(again) > 0 {
		// Their streams are written by earlier batches: read them once those are appended.
		if err := appended.wait(ctx, waitFor); err != nil {
			return nil, nil, err
		}
		t3 := time.Now()
		timing.WaitAppend += t3.Sub(t2)
		more, err := loadUsers(ctx, im.store.Pool(), im.registry, again)
		if err != nil {
			return nil, nil, err
		}
		t4 := time.Now()
		timing.Fold += t4.Sub(t3)
		for _, phone := range again {
			if err := decideUser(phone, more[phone]); err != nil {
				return nil, nil, err
			}
		}
		t2 = time.Now()
		timing.Decide += t2.Sub(t4)
	}
	sort.SliceStable(b.warnings, func(i, j int) bool { return b.warnings[i].Row < b.warnings[j].Row })
	for _, w := range b.warnings {
		c.WarningsBy[w.Code]++
	}
	c.Warnings = len(b.warnings)
	ev := events.ImportBatchProcessed{ID: spec.ID, Batch: b.no, FirstRow: b.first, LastRow: b.last, Counts: *c,
		Rejections: b.rejections, Warnings: b.warnings, Merges: merges}
	rec, err := events.NewRecord(events.DeterministicID(events.TypeImportBatchProcessed, spec.ID, strconv.Itoa(b.no)),
		events.ImportStream(spec.ID), ev, spec.Metadata)
	if err != nil {
		return nil, nil, err
	}
	recs = append(append(recs, subs...), rec)
	// Subscriptions after every other event of the batch: AppendBulk keeps each stream's order
	// but lays a chunk out stream by stream, and a user.subscribed between two user.created
	// cuts the users projection's set-based run (one statement per kind and run); appended as a
	// second part, the creations of a batch apply as a few statements, not hundreds.
	// The batch's record stays last, in the second part: a batch is recorded only once all of it
	// is appended.
	timing.Decide += time.Since(t2)
	return recs, merges, nil
}

// appendPart orders a batch's records: user events but subscriptions (0), subscriptions (1),
// the batch's record (2). Parts 1 and 2 are appended after part 0.
func appendPart(r events.Record) int {
	switch r.Type {
	case events.TypeUserSubscribed:
		return 1
	case events.TypeImportBatchProcessed:
		return 2
	}
	return 0
}

func appendCapped(dst, src []events.ImportIssue, limit int) []events.ImportIssue {
	if room := limit - len(dst); room > 0 {
		dst = append(dst, src[:min(room, len(src))]...)
	}
	return dst
}

func addCounts(t *events.ImportCounts, c events.ImportCounts) {
	t.RowsRead += c.RowsRead
	t.BlankRows += c.BlankRows
	t.Accepted += c.Accepted
	t.Rejected += c.Rejected
	t.Created += c.Created
	t.Updated += c.Updated
	t.Unchanged += c.Unchanged
	t.Merged += c.Merged
	t.Warnings += c.Warnings
	t.ConsentConflicts += c.ConsentConflicts
	for k, v := range c.RejectedBy {
		t.RejectedBy[k] += v
	}
	for k, v := range c.WarningsBy {
		t.WarningsBy[k] += v
	}
	for k, v := range c.Countries {
		t.Countries[k] += v
	}
}

// decide is the events that bring u to what the (merged) row says, the row's warnings found
// against the user, and whether an opt-in was refused because the user sent STOP.
func decide(u *user, c *candidate, mode, source string) (evs []events.Event, warnings []events.ImportIssue, conflict bool) {
	warn := func(code, value, detail string) {
		warnings = append(warnings, events.ImportIssue{Row: c.num, Code: code, Value: cut(value, 200), Detail: detail})
	}
	if c.multiZone && c.timezone == "" && (!u.exists || u.timezone == "") {
		warn(WarnTimezoneAmbiguous, c.phone, fmt.Sprintf("%s spans several time zones and no time zone is given; local time (quiet hours) will be a guess",
			regionName(c.region)))
	}
	if !u.exists {
		created := events.UserCreated{Phone: c.phone, Attributes: c.attrs, Locale: c.locale, Timezone: c.timezone,
			Consent: events.ConsentOptOut, Source: source}
		if created.Attributes == nil {
			created.Attributes = map[string]any{}
		}
		if c.consent != "" {
			created.Consent = c.consent
		}
		evs = append(evs, created)
		for _, t := range c.topics {
			evs = append(evs, events.UserSubscribed{Phone: c.phone, Topic: t, Source: source})
		}
		return evs, warnings, false
	}
	change := events.UserAttributesChanged{Phone: c.phone, Mode: events.AttributesMerge, Source: source}
	keys := make([]string, 0, len(c.attrs))
	for k := range c.attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.attrs[k]
		old, had := u.attrs[k]
		if had && jsonKind(old) != jsonKind(v) {
			warn(WarnAttributeType, k, fmt.Sprintf("%s was %s, the file gives %s", k, jsonKind(old), jsonKind(v)))
		}
		if !had || !sameJSON(old, v) {
			if change.Attributes == nil {
				change.Attributes = map[string]any{}
			}
			change.Attributes[k] = v
		}
	}
	if mode == events.AttributesReplace {
		drop := false
		for k := range u.attrs {
			if _, keep := c.attrs[k]; !keep {
				drop = true
			}
		}
		if drop || change.Attributes != nil {
			change.Mode = events.AttributesReplace
			change.Attributes = c.attrs
			if change.Attributes == nil {
				change.Attributes = map[string]any{}
			}
		}
	}
	if c.locale != "" && c.locale != u.locale {
		change.Locale = &c.locale
	}
	if c.timezone != "" && c.timezone != u.timezone {
		change.Timezone = &c.timezone
	}
	if change.Attributes != nil || change.Locale != nil || change.Timezone != nil {
		if change.Attributes == nil {
			change.Attributes = map[string]any{}
		}
		evs = append(evs, change)
	}
	if c.consent != "" && c.consent != u.consent {
		if c.consent == events.ConsentOptIn && u.consentSource == "inbound" {
			conflict = true
			warn(WarnConsentConflict, c.consent, "the user opted out by message (STOP); the file's opt-in was not applied")
		} else {
			evs = append(evs, events.UserConsentChanged{Phone: c.phone, Consent: c.consent, Source: source})
		}
	}
	for _, t := range c.topics {
		if !u.topics[t] {
			evs = append(evs, events.UserSubscribed{Phone: c.phone, Topic: t, Source: source})
		}
	}
	return evs, warnings, conflict
}

// jsonKind names a JSON value's type as the attributes hold it.
func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case float64, json.Number, int, int64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case nil:
		return "null"
	}
	return "a value"
}

// sameJSON compares two attribute values as JSON.
func sameJSON(a, b any) bool {
	if as, ok := a.(string); ok {
		bs, ok := b.(string)
		return ok && as == bs
	}
	ab, err1 := json.Marshal(a)
	bb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	if string(ab) == string(bb) {
		return true
	}
	// 3 and 3.0 (a json.Number from the file, a float64 from the log) are the same number.
	var av, bv any
	return json.Unmarshal(ab, &av) == nil && json.Unmarshal(bb, &bv) == nil && fmt.Sprint(av) == fmt.Sprint(bv)
}
