package projections

// eachRun cuts the items [0, n) of a page, in order, into runs that one set-based statement can
// apply with the same effect as applying the items one after another, and calls fn(from, to) for
// each run in order. A run holds consecutive items of the same kind (the same statement) and
// never the same key twice: INSERT … ON CONFLICT DO UPDATE cannot touch a row twice in one
// statement, UPDATE … FROM would apply only one of two rows joining the same target, and the
// sequential effect of two events on one row (created_at kept from the first create, an
// order-dependent merge) needs two statements in order.
func eachRun(n int, kind func(i int) int, key func(i int) string, fn func(from, to int) error) error {
	seen := make(map[string]struct{}, min(n, 1024))
	from := 0
	for i := 0; i < n; i++ {
		k := key(i)
		if i > from {
			if _, again := seen[k]; again || kind(i) != kind(from) {
				if err := fn(from, i); err != nil {
					return err
				}
				from = i
				clear(seen)
			}
		}
		seen[k] = struct{}{}
	}
	if from < n {
		return fn(from, n)
	}
	return nil
}
