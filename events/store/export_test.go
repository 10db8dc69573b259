package store

import "sync"

// SchemaMu serialises test schema creation in this package (internal and external tests alike):
// goose's migration lock is one advisory lock for the whole database, retried every 5 s, so two
// tests migrating at the same moment cost one of them 5 s.
var SchemaMu sync.Mutex
