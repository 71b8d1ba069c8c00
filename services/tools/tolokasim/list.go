package tolokasim

import (
	"bytes"
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Page limits of list methods.
const (
	defaultListLimit = 20
	maxListLimit     = 300    // projects, pools, restrictions
	maxAssignLimit   = 100000 // assignments
	// defaultAssignLimit is GET /assignments' page when limit is not given
	// (toloka-kit's default for assignments, tasks and task suites).
	defaultAssignLimit = 50
	// maxRestrictionLimit bounds GET /user-restrictions (Toloka's OpenAPI).
	maxRestrictionLimit = 500
)

type sortKey struct {
	field string // "id" or "created"
	desc  bool
}

type keyBound[K cmp.Ordered] struct {
	v   K
	set bool
}

type timeBound struct {
	v   time.Time
	set bool
}

// listQuery is the common query of Toloka list methods.
type listQuery[K cmp.Ordered] struct {
	limit                    int
	sort                     []sortKey
	idGt, idGte, idLt, idLte keyBound[K]
	crGt, crGte, crLt, crLte timeBound
}

// parseListQuery reads limit, sort, id_* and created_* parameters. parseKey
// turns an id parameter into the comparable key.
func parseListQuery[K cmp.Ordered](q url.Values, maxLimit int, parseKey func(string) (K, bool)) (listQuery[K], *Error) {
	lq := listQuery[K]{limit: defaultListLimit, sort: []sortKey{{field: "id"}}}
	fe := fieldErrors{}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			fe.add("limit", FieldIntegerExpected, "limit must be an integer, got %q", v)
		case n < 1:
			fe.add("limit", FieldValueLessThanMin, "limit must be at least 1, got %d", n)
		case n > maxLimit:
			fe.add("limit", FieldValueGreaterThanMax, "limit must be at most %d, got %d", maxLimit, n)
		default:
			lq.limit = n
		}
	}
	if v := q.Get("sort"); v != "" {
		lq.sort = nil
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			k := sortKey{field: strings.TrimPrefix(part, "-"), desc: strings.HasPrefix(part, "-")}
			if k.field != "id" && k.field != "created" {
				fe.add("sort", FieldUnknownEnumValue, "sort must be id, -id, created or -created (comma separated), got %q", v)
				break
			}
			lq.sort = append(lq.sort, k)
		}
	}
	for name, dst := range map[string]*keyBound[K]{"id_gt": &lq.idGt, "id_gte": &lq.idGte, "id_lt": &lq.idLt, "id_lte": &lq.idLte} {
		if v := q.Get(name); v != "" {
			k, ok := parseKey(v)
			if !ok {
				fe.add(name, FieldInvalidValue, "%s must be an id, got %q", name, v)
				continue
			}
			*dst = keyBound[K]{k, true}
		}
	}
	for name, dst := range map[string]*timeBound{"created_gt": &lq.crGt, "created_gte": &lq.crGte, "created_lt": &lq.crLt, "created_lte": &lq.crLte} {
		if v := q.Get(name); v != "" {
			t, err := ParseTime(v)
			if err != nil {
				fe.add(name, FieldInvalidDateTime, "%s: %v, got %q", name, err, v)
				continue
			}
			*dst = timeBound{t, true}
		}
	}
	if e := fe.err(); e != nil {
		return lq, e
	}
	return lq, nil
}

// match reports whether an item with key k created at t passes the id and
// created filters.
func (lq *listQuery[K]) match(k K, t time.Time) bool {
	switch {
	case lq.idGt.set && !(k > lq.idGt.v),
		lq.idGte.set && !(k >= lq.idGte.v),
		lq.idLt.set && !(k < lq.idLt.v),
		lq.idLte.set && !(k <= lq.idLte.v),
		lq.crGt.set && !t.After(lq.crGt.v),
		lq.crGte.set && t.Before(lq.crGte.v),
		lq.crLt.set && !t.Before(lq.crLt.v),
		lq.crLte.set && t.After(lq.crLte.v):
		return false
	}
	return true
}

// listEntry is one candidate item of a list answer.
type listEntry[K cmp.Ordered] struct {
	key     K
	created time.Time
	json    []byte
}

// page sorts the entries that pass the filters and renders one page.
func page[K cmp.Ordered](lq listQuery[K], entries []listEntry[K]) []byte {
	kept := entries[:0]
	for _, e := range entries {
		if lq.match(e.key, e.created) {
			kept = append(kept, e)
		}
	}
	slices.SortFunc(kept, func(a, b listEntry[K]) int {
		for _, sk := range lq.sort {
			var c int
			if sk.field == "id" {
				c = cmp.Compare(a.key, b.key)
			} else {
				c = a.created.Compare(b.created)
			}
			if sk.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.key, b.key)
	})
	hasMore := len(kept) > lq.limit
	if hasMore {
		kept = kept[:lq.limit]
	}
	var buf bytes.Buffer
	buf.WriteString(`{"items":[`)
	for i, e := range kept {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(e.json)
	}
	buf.WriteString(`],"has_more":`)
	buf.WriteString(strconv.FormatBool(hasMore))
	buf.WriteByte('}')
	return buf.Bytes()
}

// numericKey parses numeric ids for id_* filters.
func numericKey(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// stringKey accepts any id for id_* filters of string-keyed lists.
func stringKey(s string) (string, bool) { return s, true }
