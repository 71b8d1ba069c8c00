package tolokasim

import (
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// Assignment statuses.
const (
	AssignmentActive    = "ACTIVE"
	AssignmentSubmitted = "SUBMITTED"
	AssignmentAccepted  = "ACCEPTED"
	AssignmentRejected  = "REJECTED"
	AssignmentSkipped   = "SKIPPED"
	AssignmentExpired   = "EXPIRED"
)

// maxPublicCommentRunes bounds PATCH /assignments/{id} public_comment.
const maxPublicCommentRunes = 2048

// Assignment is a snapshot of an assignment: a Toloker's session in a pool
// of the EXTERNAL flow. Zero times are unset.
type Assignment struct {
	// ID looks like Toloka's: "00000000a1--000000000000000000000007".
	ID string
	// TaskSuiteID is the (generated) task suite the assignment issues.
	TaskSuiteID string
	// PoolID is the pool's numeric id as a string.
	PoolID string
	// UserID is the Toloker.
	UserID string
	// Account is the requester account that owns the pool.
	Account string
	// Status is ACTIVE, SUBMITTED, ACCEPTED, REJECTED, SKIPPED or EXPIRED.
	Status string
	// Reward is the exact sum of the session's submits.
	Reward money.Decimal
	// PublicComment is the requester's review comment.
	PublicComment string
	// Created, Submitted, Accepted, Rejected, Skipped and Expired are when
	// the assignment reached each status.
	Created   time.Time
	Submitted time.Time
	Accepted  time.Time
	Rejected  time.Time
	Skipped   time.Time
	Expired   time.Time
	// Deadline is when an ACTIVE assignment expires (created +
	// assignment_max_duration_seconds).
	Deadline time.Time
}

type poolUser struct {
	poolID uint64
	userID string
}

// assignment is the stored form; json caches its API rendering so the hot
// GET path only copies bytes.
type assignment struct {
	Assignment
	poolID       uint64
	autoAcceptAt time.Time
	json         []byte
}

type assignmentJSON struct {
	ID            string        `json:"id"`
	TaskSuiteID   string        `json:"task_suite_id"`
	PoolID        string        `json:"pool_id"`
	UserID        string        `json:"user_id"`
	Status        string        `json:"status"`
	Reward        money.Decimal `json:"reward"`
	Tasks         []any         `json:"tasks"`
	Solutions     []any         `json:"solutions"`
	PublicComment string        `json:"public_comment,omitempty"`
	Created       string        `json:"created"`
	Submitted     string        `json:"submitted,omitempty"`
	Accepted      string        `json:"accepted,omitempty"`
	Rejected      string        `json:"rejected,omitempty"`
	Skipped       string        `json:"skipped,omitempty"`
	Expired       string        `json:"expired,omitempty"`
	Owner         owner         `json:"owner"`
}

func optTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return FormatTime(t)
}

func (a *assignment) render() {
	a.json = mustJSON(assignmentJSON{
		ID:            a.ID,
		TaskSuiteID:   a.TaskSuiteID,
		PoolID:        a.PoolID,
		UserID:        a.UserID,
		Status:        a.Status,
		Reward:        a.Reward,
		Tasks:         []any{},
		Solutions:     []any{},
		PublicComment: a.PublicComment,
		Created:       FormatTime(a.Created),
		Submitted:     optTime(a.Submitted),
		Accepted:      optTime(a.Accepted),
		Rejected:      optTime(a.Rejected),
		Skipped:       optTime(a.Skipped),
		Expired:       optTime(a.Expired),
		Owner:         ownerOf(a.Account),
	})
}

// dueAt reports whether a clock-driven change (expiry, auto-accept) of a
// is due at now.
func (a *assignment) dueAt(now time.Time) bool {
	switch a.Status {
	case AssignmentActive:
		return !now.Before(a.Deadline)
	case AssignmentSubmitted:
		return !a.autoAcceptAt.IsZero() && !now.Before(a.autoAcceptAt)
	}
	return false
}

// refreshLocked applies due clock-driven changes to a. Requires the write
// lock.
func (s *Server) refreshLocked(a *assignment, now time.Time) {
	if !a.dueAt(now) {
		return
	}
	switch a.Status {
	case AssignmentActive:
		a.Status = AssignmentExpired
		a.Expired = a.Deadline
		key := poolUser{a.poolID, a.UserID}
		if s.state.active[key] == a {
			delete(s.state.active, key)
		}
	case AssignmentSubmitted:
		a.Status = AssignmentAccepted
		a.Accepted = a.autoAcceptAt
	}
	a.render()
}

// CreateAssignment starts an ACTIVE assignment for userID in poolID, as if
// the Toloker clicked Start in Toloka's task list. The pool must be OPEN
// and the Toloker must not already have an ACTIVE assignment in it.
func (s *Server) CreateAssignment(poolID, userID string) (Assignment, error) {
	if strings.TrimSpace(userID) == "" {
		return Assignment{}, singleFieldError("user_id", FieldValueRequired, "user_id is required")
	}
	now := s.clock()
	s.lock(now)
	defer s.mu.Unlock()
	id, _ := parseID(poolID)
	p := s.state.pools[id]
	if p == nil {
		return Assignment{}, errNotFound("pool", poolID)
	}
	if p.status != PoolOpen {
		return Assignment{}, errInappropriate("pool "+poolID+" is "+p.status, PoolOpen)
	}
	if st := s.state.users[userID]; st.Profile != nil {
		// A modelled Toloker sees the task only where Toloka would show it.
		switch {
		case s.restrictedLocked(p.account, userID, p, now):
			return Assignment{}, errConflict("user %s is restricted from pool %s", userID, poolID)
		case !s.filterMatchLocked(p.account, p, userID, st.Profile):
			return Assignment{}, errConflict("user %s does not match the filter of pool %s", userID, poolID)
		case !trainingPassed(p, st):
			return Assignment{}, errConflict("user %s has not passed the training that pool %s requires", userID, poolID)
		}
	}
	key := poolUser{p.id, userID}
	if cur := s.state.active[key]; cur != nil {
		s.refreshLocked(cur, now)
		if cur.Status == AssignmentActive {
			return Assignment{}, &Error{Status: http.StatusConflict, Code: CodeThereIsActiveAssignment,
				Message: fmt.Sprintf("user %s already has ACTIVE assignment %s in pool %s", userID, cur.ID, poolID),
				Payload: map[string]any{"assignment_id": cur.ID}}
		}
	}
	seq := s.asgSeq.Add(1)
	a := &assignment{
		Assignment: Assignment{
			ID:          fmt.Sprintf("%010x--%024x", p.id, seq),
			TaskSuiteID: fmt.Sprintf("%010x--%08x%016x", p.id, 0x5e17e000, seq),
			PoolID:      formatID(p.id),
			UserID:      userID,
			Account:     p.account,
			Status:      AssignmentActive,
			Reward:      money.Zero,
			Created:     now,
			Deadline:    now.Add(p.maxDuration),
		},
		poolID: p.id,
	}
	a.render()
	s.state.assignments[a.ID] = a
	s.state.active[key] = a
	return a.Assignment, nil
}

// GetAssignment returns a snapshot of the assignment with id (any account).
func (s *Server) GetAssignment(id string) (Assignment, error) {
	now := s.clock()
	s.lock(now)
	defer s.mu.Unlock()
	a := s.state.assignments[id]
	if a == nil {
		return Assignment{}, errNotFound("assignment", id)
	}
	s.refreshLocked(a, now)
	return a.Assignment, nil
}

// assignmentJSONFor returns the API rendering of an assignment (any
// account), for the admin API.
func (s *Server) assignmentJSONFor(id string) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if a := s.state.assignments[id]; a != nil {
		return a.json
	}
	return nil
}

// getAssignment is the hot path: a read lock, a map lookup and cached
// bytes, unless a clock-driven change is due.
func (s *Server) getAssignment(c *apiCall) response {
	id := c.r.PathValue("id")
	s.mu.RLock()
	a := s.state.assignments[id]
	if a == nil || a.Account != c.account {
		s.mu.RUnlock()
		return s.errResp(errNotFound("assignment", id))
	}
	if !a.dueAt(c.now) {
		body := a.json
		s.mu.RUnlock()
		return jsonResp(http.StatusOK, body)
	}
	s.mu.RUnlock()
	s.lock(c.now)
	defer s.mu.Unlock()
	a = s.state.assignments[id]
	if a == nil || a.Account != c.account {
		return s.errResp(errNotFound("assignment", id))
	}
	s.refreshLocked(a, c.now)
	return jsonResp(http.StatusOK, a.json)
}

func (s *Server) patchAssignment(c *apiCall) response {
	obj, _, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	ch := newChecker()
	status, _ := ch.enum(obj, "status", "", true, AssignmentAccepted, AssignmentRejected)
	comment, hasComment := ch.str(obj, "public_comment", "", false)
	if hasComment && utf8.RuneCountInString(comment) > maxPublicCommentRunes {
		ch.fe.add("public_comment", FieldStringTooLong, "public_comment must be at most %d characters, got %d",
			maxPublicCommentRunes, utf8.RuneCountInString(comment))
	}
	if status == AssignmentRejected && strings.TrimSpace(comment) == "" {
		ch.missing("public_comment", true)
	}
	if e := ch.fe.err(); e != nil {
		return s.errResp(e)
	}
	id := c.r.PathValue("id")
	s.lock(c.now)
	defer s.mu.Unlock()
	a := s.state.assignments[id]
	if a == nil || a.Account != c.account {
		return s.errResp(errNotFound("assignment", id))
	}
	s.refreshLocked(a, c.now)
	switch {
	case status == AssignmentAccepted && (a.Status == AssignmentSubmitted || a.Status == AssignmentRejected):
		a.Accepted = c.now
	case status == AssignmentRejected && a.Status == AssignmentSubmitted:
		a.Rejected = c.now
	case status == AssignmentAccepted:
		return s.errResp(errInappropriate("assignment "+id+" is "+a.Status, AssignmentSubmitted, AssignmentRejected))
	default:
		return s.errResp(errInappropriate("assignment "+id+" is "+a.Status, AssignmentSubmitted))
	}
	event := "REJECT"
	if status == AssignmentAccepted {
		event = "ACCEPT"
		if a.Status == AssignmentRejected {
			event = "ACCEPT_AFTER_REJECT"
		}
	}
	a.Status = status
	a.autoAcceptAt = time.Time{}
	if hasComment {
		a.PublicComment = comment
	}
	a.render()
	if p := s.state.pools[a.poolID]; p != nil {
		s.evaluateReviewLocked(c.account, p, a.UserID, event, c.now)
	}
	return jsonResp(http.StatusOK, a.json)
}

// assignmentDates are the dates GET /assignments filters (_gt, _gte, _lt,
// _lte) and sorts by, besides id.
var assignmentDates = []string{"created", "submitted", "accepted", "rejected", "skipped", "expired"}

// date returns a's date of field (zero when unset).
func (a *assignment) date(field string) time.Time {
	switch field {
	case "created":
		return a.Created
	case "submitted":
		return a.Submitted
	case "accepted":
		return a.Accepted
	case "rejected":
		return a.Rejected
	case "skipped":
		return a.Skipped
	case "expired":
		return a.Expired
	}
	return time.Time{}
}

// assignmentQuery is a parsed GET /assignments query: Toloka's filters
// (pool_id, task_suite_id or task_id, which one is required; user_id;
// status as a comma list; ranges on the id and every date), sort by the
// same fields (comma separated, "-" for descending) and limit.
type assignmentQuery struct {
	limit                         int
	sort                          []sortKey
	poolID, suiteID, taskID, user string
	taskGiven                     bool
	statuses                      map[string]bool
	idGt, idGte, idLt, idLte      keyBound[string]
	dates                         map[string][4]timeBound // gt, gte, lt, lte
}

func parseAssignmentQuery(q url.Values) (assignmentQuery, *Error) {
	aq := assignmentQuery{limit: defaultAssignLimit, sort: []sortKey{{field: "id"}}, statuses: map[string]bool{}, dates: map[string][4]timeBound{}}
	fe := fieldErrors{}
	aq.poolID, aq.suiteID, aq.user = q.Get("pool_id"), q.Get("task_suite_id"), q.Get("user_id")
	aq.taskID, aq.taskGiven = q.Get("task_id"), q.Has("task_id")
	if aq.poolID == "" && aq.suiteID == "" && aq.taskID == "" {
		fe.add("pool_id", FieldValueRequired, "one of pool_id, task_suite_id or task_id is required")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			fe.add("limit", FieldIntegerExpected, "limit must be an integer, got %q", v)
		case n < 1:
			fe.add("limit", FieldValueLessThanMin, "limit must be at least 1, got %d", n)
		case n > maxAssignLimit:
			fe.add("limit", FieldValueGreaterThanMax, "limit must be at most %d, got %d", maxAssignLimit, n)
		default:
			aq.limit = n
		}
	}
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			switch st = strings.TrimSpace(st); st {
			case AssignmentActive, AssignmentSubmitted, AssignmentAccepted, AssignmentRejected, AssignmentSkipped, AssignmentExpired:
				aq.statuses[st] = true
			default:
				fe.add("status", FieldUnknownEnumValue, "unknown assignment status %q", st)
			}
		}
	}
	if v := q.Get("sort"); v != "" {
		aq.sort = nil
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			k := sortKey{field: strings.TrimPrefix(part, "-"), desc: strings.HasPrefix(part, "-")}
			if k.field != "id" && !slices.Contains(assignmentDates, k.field) {
				fe.add("sort", FieldUnknownEnumValue, "sort must be id or a date (%s), \"-\" for descending, comma separated; got %q",
					strings.Join(assignmentDates, ", "), v)
				break
			}
			aq.sort = append(aq.sort, k)
		}
	}
	for name, dst := range map[string]*keyBound[string]{"id_gt": &aq.idGt, "id_gte": &aq.idGte, "id_lt": &aq.idLt, "id_lte": &aq.idLte} {
		if v := q.Get(name); v != "" {
			*dst = keyBound[string]{v, true}
		}
	}
	for _, field := range assignmentDates {
		var b [4]timeBound
		for i, op := range []string{"_gt", "_gte", "_lt", "_lte"} {
			name := field + op
			if v := q.Get(name); v != "" {
				t, err := ParseTime(v)
				if err != nil {
					fe.add(name, FieldInvalidDateTime, "%s: %v, got %q", name, err, v)
					continue
				}
				b[i] = timeBound{t, true}
			}
		}
		aq.dates[field] = b
	}
	if e := fe.err(); e != nil {
		return aq, e
	}
	return aq, nil
}

// match reports whether a passes the query's filters.
func (aq *assignmentQuery) match(a *assignment) bool {
	switch {
	case aq.poolID != "" && a.PoolID != aq.poolID,
		aq.suiteID != "" && a.TaskSuiteID != aq.suiteID,
		aq.taskGiven, // tasks are not modelled: no assignment has one
		aq.user != "" && a.UserID != aq.user,
		len(aq.statuses) > 0 && !aq.statuses[a.Status],
		aq.idGt.set && !(a.ID > aq.idGt.v),
		aq.idGte.set && !(a.ID >= aq.idGte.v),
		aq.idLt.set && !(a.ID < aq.idLt.v),
		aq.idLte.set && !(a.ID <= aq.idLte.v):
		return false
	}
	for field, b := range aq.dates {
		t := a.date(field)
		if (b[0].set || b[1].set || b[2].set || b[3].set) && t.IsZero() {
			return false // a range on a date the assignment does not have
		}
		if b[0].set && !t.After(b[0].v) || b[1].set && t.Before(b[1].v) || b[2].set && !t.Before(b[2].v) || b[3].set && t.After(b[3].v) {
			return false
		}
	}
	return true
}

// compare orders two assignments by the query's sort, then by id.
func (aq *assignmentQuery) compare(a, b *assignment) int {
	for _, sk := range aq.sort {
		var c int
		if sk.field == "id" {
			c = cmp.Compare(a.ID, b.ID)
		} else {
			c = a.date(sk.field).Compare(b.date(sk.field))
		}
		if sk.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(a.ID, b.ID)
}

// listAssignments is GET /assignments with Toloka's filters.
func (s *Server) listAssignments(c *apiCall) response {
	aq, e := parseAssignmentQuery(c.r.URL.Query())
	if e != nil {
		return s.errResp(e)
	}
	s.lock(c.now)
	var kept []*assignment
	for _, a := range s.state.assignments {
		if a.Account != c.account {
			continue
		}
		s.refreshLocked(a, c.now)
		if aq.match(a) {
			kept = append(kept, a)
		}
	}
	slices.SortFunc(kept, aq.compare)
	hasMore := len(kept) > aq.limit
	if hasMore {
		kept = kept[:aq.limit]
	}
	var buf bytes.Buffer
	buf.WriteString(`{"items":[`)
	for i, a := range kept {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(a.json)
	}
	s.mu.Unlock()
	buf.WriteString(`],"has_more":`)
	buf.WriteString(strconv.FormatBool(hasMore))
	buf.WriteByte('}')
	return jsonResp(http.StatusOK, buf.Bytes())
}
