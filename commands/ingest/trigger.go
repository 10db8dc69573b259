package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"herald/commands"
	"herald/events"
	"herald/events/store"
	"herald/projections/segment"
)

// Trigger line problems (TriggerIssue.Code).
const (
	TriggerMalformed       = "malformed_line"
	TriggerMissingField    = "missing_field"
	TriggerInvalidField    = "invalid_field"
	TriggerUnknownTemplate = "unknown_template"
	TriggerUnknownSegment  = "unknown_segment"
	TriggerDuplicate       = "duplicate"
)

// Limits of a trigger line.
const (
	maxEventIDLen  = 200
	maxPayloadKeys = 200
)

var (
	triggerTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)
	resourceIDPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
)

// TriggerLine is one valid line of a trigger file.
type TriggerLine struct {
	EventID    string
	Type       string
	OccurredAt time.Time
	Payload    map[string]any
	Segment    json.RawMessage // compact; nil with SegmentID or with neither (everyone subscribed)
	SegmentID  string
	TemplateID string
	Topic      string
	rule       segment.Rule
}

// TriggerIssue is what went wrong with one line (Code), where (Field) and why (Detail).
type TriggerIssue struct {
	Line    int    `json:"line"`
	EventID string `json:"event_id,omitempty"`
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Detail  string `json:"detail"`
}

type triggerJSON struct {
	EventID    *string         `json:"event_id"`
	Type       *string         `json:"type"`
	OccurredAt *string         `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`
	Segment    json.RawMessage `json:"segment"`
	SegmentID  *string         `json:"segment_id"`
	TemplateID *string         `json:"template_id"`
	Topic      *string         `json:"topic"`
}

// ParseTriggerLine validates one line on its own (the database checks come later): a JSON
// object with event_id, type, occurred_at (RFC 3339), payload (an object), segment (a rule)
// or segment_id or neither, template_id and topic. Every {"$event": …} field the rule uses
// must be in the payload.
func ParseTriggerLine(line []byte) (TriggerLine, *TriggerIssue) {
	return parseTriggerLine(line, nil)
}

// ruleCache remembers parsed rules by their JSON: a feed repeats one rule on every line.
type ruleCache map[string]ruleEntry

type ruleEntry struct {
	rule    segment.Rule
	compact []byte
	err     error
}

const maxCachedRules = 10_000

func parseTriggerLine(line []byte, rules ruleCache) (TriggerLine, *TriggerIssue) {
	bad := func(code, field, format string, a ...any) (TriggerLine, *TriggerIssue) {
		return TriggerLine{}, &TriggerIssue{Code: code, Field: field, Detail: fmt.Sprintf(format, a...)}
	}
	if !utf8.Valid(line) {
		return bad(TriggerMalformed, "", "not UTF-8 text")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var j triggerJSON
	if err := dec.Decode(&j); err != nil {
		return bad(TriggerMalformed, "", "not a trigger object: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad(TriggerMalformed, "", "more than one JSON value on the line")
	}
	var t TriggerLine
	switch {
	case j.EventID == nil || *j.EventID == "":
		return bad(TriggerMissingField, "event_id", "is required")
	case len(*j.EventID) > maxEventIDLen:
		return bad(TriggerInvalidField, "event_id", "is longer than %d bytes", maxEventIDLen)
	case strings.IndexFunc(*j.EventID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		return bad(TriggerInvalidField, "event_id", "must not contain spaces or control characters")
	}
	t.EventID = *j.EventID
	switch {
	case j.Type == nil || *j.Type == "":
		return bad(TriggerMissingField, "type", "is required")
	case !triggerTypePattern.MatchString(*j.Type):
		return bad(TriggerInvalidField, "type", "is lower case letters, digits, _ . - (like price_drop)")
	}
	t.Type = *j.Type
	if j.OccurredAt == nil || *j.OccurredAt == "" {
		return bad(TriggerMissingField, "occurred_at", "is required")
	}
	at, err := time.Parse(time.RFC3339Nano, *j.OccurredAt)
	if err != nil {
		return bad(TriggerInvalidField, "occurred_at", "is not an RFC 3339 time like 2026-11-27T10:00:00Z")
	}
	t.OccurredAt = at.UTC()
	t.Payload = map[string]any{}
	if p := bytes.TrimSpace(j.Payload); len(p) > 0 && string(p) != "null" {
		pd := json.NewDecoder(bytes.NewReader(p))
		pd.UseNumber()
		if p[0] != '{' || pd.Decode(&t.Payload) != nil {
			return bad(TriggerInvalidField, "payload", "must be a JSON object")
		}
		if len(t.Payload) > maxPayloadKeys {
			return bad(TriggerInvalidField, "payload", "has more than %d fields", maxPayloadKeys)
		}
	}
	if j.TemplateID == nil || *j.TemplateID == "" {
		return bad(TriggerMissingField, "template_id", "is required")
	}
	if !resourceIDPattern.MatchString(*j.TemplateID) {
		return bad(TriggerInvalidField, "template_id", "is not a template id")
	}
	t.TemplateID = *j.TemplateID
	if j.Topic == nil || *j.Topic == "" {
		return bad(TriggerMissingField, "topic", "is required")
	}
	if slug := *j.Topic; !plainSlug(slug) {
		slug = commands.Slug(slug)
		if slug != *j.Topic {
			return bad(TriggerInvalidField, "topic", "is not a topic slug (lower case letters, digits and -); did you mean %q?", slug)
		}
	}
	t.Topic = *j.Topic
	seg := bytes.TrimSpace(j.Segment)
	hasSeg := len(seg) > 0 && string(seg) != "null"
	if hasSeg && j.SegmentID != nil && *j.SegmentID != "" {
		return bad(TriggerInvalidField, "segment", "give segment or segment_id, not both")
	}
	if j.SegmentID != nil && *j.SegmentID != "" {
		if !resourceIDPattern.MatchString(*j.SegmentID) {
			return bad(TriggerInvalidField, "segment_id", "is not a segment id")
		}
		t.SegmentID = *j.SegmentID
	}
	if hasSeg {
		entry, cached := rules[string(seg)]
		if !cached {
			entry.rule, entry.err = segment.Parse(seg)
			if entry.err == nil {
				var compact bytes.Buffer
				entry.err = json.Compact(&compact, seg)
				entry.compact = compact.Bytes()
			}
			if rules != nil && len(rules) < maxCachedRules {
				rules[string(seg)] = entry
			}
		}
		if entry.err != nil {
			return ruleIssue("segment", entry.err)
		}
		if issue := checkEventFields(entry.rule, t.Payload); issue != nil {
			return TriggerLine{}, issue
		}
		t.Segment, t.rule = entry.compact, entry.rule
	}
	return t, nil
}

// plainSlug reports whether s is what commands.Slug returns for it without asking it (Slug
// builds a Unicode normalizer per call): at most 64 lower case letters and digits, single -
// between them.
func plainSlug(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && s[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

func ruleIssue(field string, err error) (TriggerLine, *TriggerIssue) {
	var ve *segment.ValidationError
	if errors.As(err, &ve) && ve.Path != "" {
		field += "." + ve.Path
	}
	detail := err.Error()
	if ve != nil {
		detail = ve.Reason
	}
	return TriggerLine{}, &TriggerIssue{Code: TriggerInvalidField, Field: field, Detail: detail}
}

func checkEventFields(rule segment.Rule, payload map[string]any) *TriggerIssue {
	for _, f := range rule.EventFields() {
		if _, ok := payload[f]; !ok {
			return &TriggerIssue{Code: TriggerInvalidField, Field: "payload." + f,
				Detail: fmt.Sprintf("the segment uses {\"$event\": %q} but the payload has no %s", f, f)}
		}
	}
	return nil
}

// TriggersConfig tunes Triggers.
type TriggersConfig struct {
	// BatchSize is how many lines are checked, resolved and appended together (default 1,000).
	BatchSize int
	// MaxReportItems caps the accepted and duplicate lines listed in a report (default 1,000;
	// rejections are always all listed).
	MaxReportItems int
}

func (c TriggersConfig) withDefaults() TriggersConfig {
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.MaxReportItems == 0 {
		c.MaxReportItems = 1000
	}
	return c
}

// Validate lists every problem; zero values stand for their defaults.
func (c TriggersConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 10_000 {
		errs = append(errs, fmt.Errorf("ingest: trigger BatchSize must be 1..10000, got %d", c.BatchSize))
	}
	if c.MaxReportItems < 0 {
		errs = append(errs, errors.New("ingest: MaxReportItems must be ≥ 0"))
	}
	return errors.Join(errs...)
}

// Triggers accepts trigger events: each line is validated on its own, deduplicated by its
// event_id (across files: the trigger's stream exists), its audience resolved with the segment
// compiler — subscribed to the topic AND opted in AND the rule — and recorded as
// trigger.accepted with the recipient count.
type Triggers struct {
	cfg      TriggersConfig
	store    *store.Store
	registry *events.Registry
	now      func() time.Time
}

// NewTriggers checks cfg and wires Triggers.
func NewTriggers(s *store.Store, registry *events.Registry, cfg TriggersConfig) (*Triggers, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Triggers{cfg: cfg.withDefaults(), store: s, registry: registry, now: time.Now}, nil
}

// TriggerAccepted is one accepted line in a report.
type TriggerAccepted struct {
	Line       int    `json:"line"`
	EventID    string `json:"event_id"`
	Recipients int64  `json:"recipients"`
}

// TriggerReport says what happened to every line.
type TriggerReport struct {
	Lines      int               `json:"lines"`
	Accepted   int               `json:"accepted"`
	Duplicates int               `json:"duplicates"`
	Rejected   int               `json:"rejected"`
	Recipients int64             `json:"recipients"`
	Rejections []TriggerIssue    `json:"rejections"`
	Duplicated []TriggerIssue    `json:"duplicated"`
	Items      []TriggerAccepted `json:"accepted_lines"`
	Checkpoint store.Checkpoint  `json:"-"`
	// Timing is where the time went (not in the report: it varies).
	Timing TriggerTiming `json:"-"`
}

// TriggerTiming splits a Process's wall time: reading and validating lines, looking up the
// event ids already accepted and the catalog, counting audiences, and appending.
type TriggerTiming struct {
	Parse, Lookup, Count, Append time.Duration
}

type pendingTrigger struct {
	line int
	t    TriggerLine
	id   uuid.UUID
}

// Process reads NDJSON trigger lines from r. The error is only for the environment; every
// line's outcome is in the report.
func (tr *Triggers) Process(ctx context.Context, r io.Reader, md events.Metadata) (TriggerReport, error) {
	rep := TriggerReport{Rejections: []TriggerIssue{}, Duplicated: []TriggerIssue{}, Items: []TriggerAccepted{}}
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	seen := map[uuid.UUID]int{} // event id → first line, within this file
	var batch []pendingTrigger
	rules := ruleCache{}
	lineNo := 0
	cache := &catalogCache{templates: map[string]bool{}, segments: map[string]*segment.Rule{}, raw: map[string]json.RawMessage{}, audiences: map[string]int64{}}
	// Batch N is appended while batch N+1 is read and resolved.
	app := tr.newAppender(ctx, &rep)
	defer app.close()
	for {
		line, err := readLine(br, &buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, err
		}
		lineNo++
		if line != nil && len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rep.Lines++
		if line == nil {
			tr.reject(&rep, TriggerIssue{Line: lineNo, Code: TriggerMalformed, Detail: "the line is longer than 64 KiB"})
			continue
		}
		parsed := time.Now()
		t, issue := parseTriggerLine(line, rules)
		rep.Timing.Parse += time.Since(parsed)
		if issue != nil {
			issue.Line = lineNo
			tr.reject(&rep, *issue)
			continue
		}
		id := events.DeterministicID(events.TypeTriggerAccepted, t.EventID)
		if first, dup := seen[id]; dup {
			rep.Duplicates++
			rep.Duplicated = appendItem(rep.Duplicated, TriggerIssue{Line: lineNo, EventID: t.EventID, Code: TriggerDuplicate,
				Detail: fmt.Sprintf("line %d has the same event_id", first)}, tr.cfg.MaxReportItems)
			continue
		}
		seen[id] = lineNo
		batch = append(batch, pendingTrigger{line: lineNo, t: t, id: id})
		if len(batch) >= tr.cfg.BatchSize {
			job, err := tr.prepare(ctx, batch, cache, &rep, md)
			if err != nil {
				return rep, err
			}
			if err := app.submit(job); err != nil {
				return rep, err
			}
			batch = nil
		}
	}
	job, err := tr.prepare(ctx, batch, cache, &rep, md)
	if err != nil {
		return rep, err
	}
	if err := app.submit(job); err != nil {
		return rep, err
	}
	if err := app.wait(); err != nil {
		return rep, err
	}
	byLine := func(a, b TriggerIssue) int { return a.Line - b.Line }
	slices.SortStableFunc(rep.Rejections, byLine)
	slices.SortStableFunc(rep.Duplicated, byLine)
	return rep, nil
}

func appendItem[T any](list []T, item T, limit int) []T {
	if len(list) < limit {
		list = append(list, item)
	}
	return list
}

func (tr *Triggers) reject(rep *TriggerReport, issue TriggerIssue) {
	rep.Rejected++
	rep.Rejections = append(rep.Rejections, issue)
}

// catalogCache remembers which templates and segments exist during one Process.
type catalogCache struct {
	templates map[string]bool
	segments  map[string]*segment.Rule // nil: no such segment
	raw       map[string]json.RawMessage
	audiences map[string]int64 // audience query → count
}

// maxCachedAudiences bounds the audience counts remembered within one file.
const maxCachedAudiences = 100_000

func (c *catalogCache) template(ctx context.Context, q store.Querier, id string) (bool, error) {
	if ok, seen := c.templates[id]; seen {
		return ok, nil
	}
	var n int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM templates WHERE id = $1`, id).Scan(&n); err != nil {
		return false, fmt.Errorf("read template %s: %w", id, err)
	}
	c.templates[id] = n > 0
	return n > 0, nil
}

func (c *catalogCache) segment(ctx context.Context, q store.Querier, id string) (*segment.Rule, json.RawMessage, error) {
	if r, seen := c.segments[id]; seen {
		return r, c.raw[id], nil
	}
	var raw []byte
	err := q.QueryRow(ctx, `SELECT rule FROM segments WHERE id = $1`, id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		c.segments[id] = nil
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read segment %s: %w", id, err)
	}
	rule, err := segment.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("segment %s: %w", id, err)
	}
	c.segments[id], c.raw[id] = &rule, raw
	return &rule, raw, nil
}

// countConns bounds the connections one batch counts audiences on; a connection gets at least
// countsPerConn queries.
const (
	countConns    = 2
	countsPerConn = 50
)

// sqlAudience counts a trigger's recipients: subscribed to $1, opted in, and the rule.
const sqlAudience = `SELECT count(*) FROM users u WHERE u.consent = 'OPT_IN'
AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.phone = u.phone AND s.topic = $1 AND s.subscribed) AND `

// prepare checks the catalog and the log for a batch and resolves each audience: the
// accepted lines' records, to append.
func (tr *Triggers) prepare(ctx context.Context, batch []pendingTrigger, cache *catalogCache, rep *TriggerReport, md events.Metadata) (*appendJob, error) {
	if len(batch) == 0 {
		return &appendJob{}, nil
	}
	t0 := time.Now()
	pool := tr.store.Pool()
	ids := make([]uuid.UUID, len(batch))
	for i, p := range batch {
		ids[i] = p.id
	}
	rows, err := pool.Query(ctx, `SELECT event_id FROM events WHERE event_id = ANY($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("triggers: look up event ids: %w", err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("triggers: look up event ids: %w", err)
	}
	already := map[uuid.UUID]bool{}
	for _, id := range stored {
		already[id] = true
	}
	now := tr.now().UTC()
	pending := map[string]int64{} // counts of this batch not kept in the cache
	type resolved struct {
		p    pendingTrigger
		rule *segment.Rule
		seg  json.RawMessage
	}
	var todo []resolved
	for _, p := range batch {
		if already[p.id] {
			rep.Duplicates++
			rep.Duplicated = appendItem(rep.Duplicated, TriggerIssue{Line: p.line, EventID: p.t.EventID, Code: TriggerDuplicate,
				Detail: "this event_id was accepted before"}, tr.cfg.MaxReportItems)
			continue
		}
		ok, err := cache.template(ctx, pool, p.t.TemplateID)
		if err != nil {
			return nil, err
		}
		if !ok {
			tr.reject(rep, TriggerIssue{Line: p.line, EventID: p.t.EventID, Code: TriggerUnknownTemplate, Field: "template_id", Detail: "no template has this id"})
			continue
		}
		res := resolved{p: p, seg: p.t.Segment}
		switch {
		case p.t.SegmentID != "":
			rule, _, err := cache.segment(ctx, pool, p.t.SegmentID)
			if err != nil {
				return nil, err
			}
			if rule == nil {
				tr.reject(rep, TriggerIssue{Line: p.line, EventID: p.t.EventID, Code: TriggerUnknownSegment, Field: "segment_id", Detail: "no segment has this id"})
				continue
			}
			if issue := checkEventFields(*rule, p.t.Payload); issue != nil {
				issue.Line, issue.EventID = p.line, p.t.EventID
				tr.reject(rep, *issue)
				continue
			}
			res.rule = rule
		case p.t.Segment != nil:
			rule := p.t.rule
			res.rule = &rule
		}
		todo = append(todo, res)
	}
	t1 := time.Now()
	rep.Timing.Lookup += t1.Sub(t0)
	// Pipelined round trips for the audiences of the batch, split over countConns connections
	// counting at once (a file's first batch holds most of its distinct audiences). Lines whose
	// audience query is the same (the same topic, rule and payload values: a feed repeats its
	// products) share one count within a file, resolved at the same instant.
	type query struct {
		key, sql string
		args     []any
		n        int64
	}
	var queries []*query
	var counted []resolved
	keys := make([]string, 0, len(todo))
	queued := map[string]bool{}
	for _, res := range todo {
		where, args := "true", []any{res.p.t.Topic}
		if res.rule != nil {
			w, a, err := segment.Compile(*res.rule, segment.Params{Event: res.p.t.Payload, Now: now, ArgOffset: 1})
			if err != nil {
				field := "segment"
				if res.p.t.SegmentID != "" {
					field = "segment_id"
				}
				_, issue := ruleIssue(field, err)
				issue.Line, issue.EventID = res.p.line, res.p.t.EventID
				tr.reject(rep, *issue)
				continue
			}
			where, args = w, append(args, a...)
		}
		key, err := json.Marshal(args)
		if err != nil {
			return nil, fmt.Errorf("triggers: line %d: %w", res.p.line, err)
		}
		k := where + "\x00" + string(key)
		counted = append(counted, res)
		keys = append(keys, k)
		if _, known := cache.audiences[k]; known || queued[k] {
			continue
		}
		queued[k] = true
		queries = append(queries, &query{key: k, sql: sqlAudience + "(" + where + ")", args: args})
	}
	conns := min(countConns, (len(queries)+countsPerConn-1)/countsPerConn)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &pgx.Batch{}
			for i := c; i < len(queries); i += conns {
				q := queries[i]
				b.Queue(q.sql, q.args...).QueryRow(func(row pgx.Row) error { return row.Scan(&q.n) })
			}
			errs[c] = pool.SendBatch(ctx, b).Close()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("triggers: resolve audiences: %w", err)
	}
	for _, q := range queries {
		if len(cache.audiences) < maxCachedAudiences {
			cache.audiences[q.key] = q.n
		}
		pending[q.key] = q.n
	}
	counts := make([]int64, len(counted))
	for i, k := range keys {
		n, ok := cache.audiences[k]
		if !ok {
			n = pending[k]
		}
		counts[i] = n
	}
	t2 := time.Now()
	rep.Timing.Count += t2.Sub(t1)
	job := &appendJob{recs: make([]events.Record, 0, len(counted)), items: make([]TriggerAccepted, 0, len(counted))}
	for i, res := range counted {
		t := res.p.t
		e := events.TriggerAccepted{EventID: t.EventID, Type: t.Type, OccurredAt: t.OccurredAt, Payload: t.Payload,
			Segment: res.seg, SegmentID: t.SegmentID, TemplateID: t.TemplateID, Topic: t.Topic, Recipients: counts[i],
			ResolvedAt: now, Source: md.Source}
		rec, err := events.NewRecord(res.p.id, events.TriggerStream(t.EventID), e, md)
		if err != nil {
			return nil, err
		}
		job.recs = append(job.recs, rec)
		job.items = append(job.items, TriggerAccepted{Line: res.p.line, EventID: t.EventID, Recipients: counts[i]})
	}
	return job, nil
}

// appendJob is a batch's accepted lines, to append and then count in the report.
type appendJob struct {
	recs  []events.Record
	items []TriggerAccepted
	res   store.BulkResult
	took  time.Duration
	err   error
}

// appender appends batches on its own goroutine while the next batch is read and resolved:
// one batch in flight at a time, so memory stays at two batches. Only the goroutine calling
// submit and wait touches the report.
type appender struct {
	jobs     chan *appendJob
	done     chan *appendJob
	inFlight bool
	rep      *TriggerReport
	limit    int
}

func (tr *Triggers) newAppender(ctx context.Context, rep *TriggerReport) *appender {
	a := &appender{jobs: make(chan *appendJob), done: make(chan *appendJob, 1), rep: rep, limit: tr.cfg.MaxReportItems}
	go func() {
		for j := range a.jobs {
			start := time.Now()
			if len(j.recs) > 0 {
				j.res, j.err = tr.store.AppendBulk(ctx, j.recs)
			}
			j.took = time.Since(start)
			a.done <- j
		}
	}()
	return a
}

// wait counts the batch in flight in the report once it is appended.
func (a *appender) wait() error {
	if !a.inFlight {
		return nil
	}
	a.inFlight = false
	j := <-a.done
	if j.err != nil {
		return fmt.Errorf("triggers: append: %w", j.err)
	}
	rep := a.rep
	rep.Timing.Append += j.took
	if rep.Checkpoint.Less(j.res.Checkpoint) {
		rep.Checkpoint = j.res.Checkpoint
	}
	for _, item := range j.items {
		rep.Accepted++
		rep.Recipients += item.Recipients
		rep.Items = appendItem(rep.Items, item, a.limit)
	}
	return nil
}

// submit waits for the batch before and starts appending j.
func (a *appender) submit(j *appendJob) error {
	if err := a.wait(); err != nil {
		return err
	}
	a.jobs <- j
	a.inFlight = true
	return nil
}

// close ends the goroutine (after the batch in flight, if any: done holds its result).
func (a *appender) close() { close(a.jobs) }
