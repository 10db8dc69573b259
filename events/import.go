package events

// An import is a stream of its own: it starts, records each batch of rows it processed (with
// the rows it rejected, its warnings and the duplicates it merged), and finishes with the
// totals. The users it creates or changes get ordinary user.* events on their own streams, with
// Source "import:<id>"; the import stream is the data-quality report.
const CategoryImport = "import"

// ImportStream is the stream of one import.
func ImportStream(id string) string { return CategoryImport + "-" + id }

// Event types of the import stream.
const (
	TypeImportStarted        = "import.started"
	TypeImportBatchProcessed = "import.batch_processed"
	TypeImportFinished       = "import.finished"
)

// Import statuses (ImportFinished.Status).
const (
	ImportCompleted = "completed"
	ImportFailed    = "failed"
)

// ImportStarted opens an import: what is read, how, and from where.
type ImportStarted struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`   // "users"
	Format string `json:"format"` // csv, json, ndjson
	Mode   string `json:"mode"`   // merge or replace (AttributesMerge, AttributesReplace)
	Region string `json:"region,omitempty"`
	Source string `json:"source,omitempty"` // the file name, when known
}

func (ImportStarted) EventType() string  { return TypeImportStarted }
func (ImportStarted) SchemaVersion() int { return 1 }

// ImportCounts are the totals of a batch or of a whole import. Rows are counted in the file;
// Created, Updated and Unchanged count distinct users (a duplicate row is Merged into the
// user of its first row).
type ImportCounts struct {
	RowsRead  int `json:"rows_read"`
	BlankRows int `json:"blank_rows"`
	Accepted  int `json:"accepted"`
	Rejected  int `json:"rejected"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Merged    int `json:"merged"`
	Warnings  int `json:"warnings"`
	// ConsentConflicts counts OPT_IN values not applied to users who opted out with STOP.
	ConsentConflicts int            `json:"consent_conflicts"`
	RejectedBy       map[string]int `json:"rejected_by"` // reason code → rows
	WarningsBy       map[string]int `json:"warnings_by"` // warning code → rows
	Countries        map[string]int `json:"countries"`   // ISO region ("" unknown) → distinct users
}

// ImportIssue is one row's rejection, warning or merge: Code is the reason or warning code
// (or "merged_into" with Into, the row it was merged into); Value the raw value at fault.
type ImportIssue struct {
	Row    int    `json:"row"`
	Code   string `json:"code"`
	Value  string `json:"value,omitempty"`
	Detail string `json:"detail,omitempty"`
	Into   int    `json:"into,omitempty"`
}

// ImportBatchProcessed records one batch of rows: its counts and every issue of its rows.
type ImportBatchProcessed struct {
	ID         string        `json:"id"`
	Batch      int           `json:"batch"`
	FirstRow   int           `json:"first_row"`
	LastRow    int           `json:"last_row"`
	Counts     ImportCounts  `json:"counts"`
	Rejections []ImportIssue `json:"rejections,omitempty"`
	Warnings   []ImportIssue `json:"warnings,omitempty"`
	Merges     []ImportIssue `json:"merges,omitempty"`
}

func (ImportBatchProcessed) EventType() string  { return TypeImportBatchProcessed }
func (ImportBatchProcessed) SchemaVersion() int { return 1 }

// ImportFinished closes an import with its totals (the sum of its batches), the columns it
// read (header → attribute key or typed field), and how long it took.
type ImportFinished struct {
	ID         string            `json:"id"`
	Status     string            `json:"status"`
	Error      string            `json:"error,omitempty"`
	Totals     ImportCounts      `json:"totals"`
	Columns    map[string]string `json:"columns,omitempty"`
	DurationMs int64             `json:"duration_ms"`
}

func (ImportFinished) EventType() string  { return TypeImportFinished }
func (ImportFinished) SchemaVersion() int { return 1 }
