package tolokasim

import (
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Operation types.
const (
	opPoolOpen       = "POOL.OPEN"
	opPoolClose      = "POOL.CLOSE"
	opPoolArchive    = "POOL.ARCHIVE"
	opProjectArchive = "PROJECT.ARCHIVE"

	opTrainingOpen    = "TRAINING.OPEN"
	opTrainingClose   = "TRAINING.CLOSE"
	opTrainingArchive = "TRAINING.ARCHIVE"
)

// poolOpOf is the pool operation a training operation performs.
var poolOpOf = map[string]string{opTrainingOpen: opPoolOpen, opTrainingClose: opPoolClose, opTrainingArchive: opPoolArchive}

// Operation statuses.
const (
	OperationPending = "PENDING"
	OperationRunning = "RUNNING"
	OperationSuccess = "SUCCESS"
	OperationFail    = "FAIL"
)

// operation is an asynchronous state change. It is due at submitted +
// OperationDelay; the change is applied then (lazily, by settleLocked).
type operation struct {
	id        string
	typ       string
	account   string
	poolID    uint64
	projectID uint64
	submitted time.Time
	due       time.Time
	final     string // SUCCESS or FAIL once applied; empty while pending
	// closeReason is the last_close_reason a close sets (MANUAL unless
	// the close is a close-for-update: FOR_UPDATE).
	closeReason string
	details     map[string]any
}

type operationJSON struct {
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	Status     string            `json:"status"`
	Submitted  string            `json:"submitted"`
	Started    string            `json:"started,omitempty"`
	Finished   string            `json:"finished,omitempty"`
	Progress   int               `json:"progress"`
	Parameters map[string]string `json:"parameters"`
	Details    map[string]any    `json:"details,omitempty"`
}

// render describes op at now. A pending operation is PENDING during the
// first half of the delay and RUNNING (with progress) during the second.
func (op *operation) render(now time.Time, delay time.Duration) []byte {
	j := operationJSON{
		ID:        op.id,
		Type:      op.typ,
		Submitted: FormatTime(op.submitted),
		Details:   op.details,
	}
	if op.poolID != 0 {
		j.Parameters = map[string]string{"pool_id": formatID(op.poolID)}
		if _, training := poolOpOf[op.typ]; training {
			j.Parameters = map[string]string{"training_id": formatID(op.poolID)}
		}
	} else {
		j.Parameters = map[string]string{"project_id": formatID(op.projectID)}
	}
	half := op.submitted.Add(delay / 2)
	switch {
	case op.final != "":
		j.Status, j.Progress = op.final, 100
		j.Started, j.Finished = FormatTime(half), FormatTime(op.due)
	case now.Before(half):
		j.Status = OperationPending
	default:
		j.Status = OperationRunning
		j.Started = FormatTime(half)
		if delay > 0 {
			j.Progress = min(99, int(100*now.Sub(op.submitted)/delay))
		}
	}
	return mustJSON(j)
}

// startOpLocked registers an operation and applies it at once when the
// delay is zero.
func (s *Server) startOpLocked(typ, account string, poolID, projectID uint64, now time.Time) *operation {
	return s.startCloseOpLocked(typ, "", account, poolID, projectID, now)
}

// startCloseOpLocked is startOpLocked for a close whose last_close_reason
// is closeReason (empty: MANUAL).
func (s *Server) startCloseOpLocked(typ, closeReason, account string, poolID, projectID uint64, now time.Time) *operation {
	op := &operation{
		closeReason: closeReason,
		id:          fmt.Sprintf("%08x-0000-4000-a000-%012x", 0x0c0ffee0, s.opSeq.Add(1)),
		typ:         typ,
		account:     account,
		poolID:      poolID,
		projectID:   projectID,
		submitted:   now,
		due:         now.Add(s.cfg.OperationDelay),
	}
	st := s.state
	st.ops[op.id] = op
	i, _ := slices.BinarySearchFunc(st.pendingOps, op.due, func(o *operation, t time.Time) int {
		if o.due.After(t) {
			return 1
		}
		return -1 // equal due times keep submission order
	})
	st.pendingOps = slices.Insert(st.pendingOps, i, op)
	if poolID != 0 {
		st.pools[poolID].pending = op
	} else {
		st.projects[projectID].pending = op
	}
	s.recomputeDueLocked()
	s.settleLocked(now)
	return op
}

// settleLocked applies every operation due by now and closes open pools
// whose will_expire has passed. Requires the write lock.
func (s *Server) settleLocked(now time.Time) {
	st := s.state
	if !st.dueAt(now) {
		return
	}
	n := 0
	for _, op := range st.pendingOps {
		if op.due.After(now) {
			break
		}
		s.applyOpLocked(op)
		n++
	}
	st.pendingOps = slices.Delete(st.pendingOps, 0, n)
	for _, p := range st.pools {
		if p.status == PoolOpen && !p.willExpire.After(now) {
			p.status = PoolClosed
			p.lastCloseReason = "EXPIRED"
			p.lastStopped = p.willExpire
			p.render()
		}
	}
	s.recomputeDueLocked()
}

// recomputeDueLocked sets nextDue to the earliest pending change.
func (s *Server) recomputeDueLocked() {
	st := s.state
	var next time.Time
	if len(st.pendingOps) > 0 {
		next = st.pendingOps[0].due
	}
	for _, p := range st.pools {
		if p.status == PoolOpen && (next.IsZero() || p.willExpire.Before(next)) {
			next = p.willExpire
		}
	}
	st.nextDue = next
}

// applyOpLocked performs op's state change at its due time.
func (s *Server) applyOpLocked(op *operation) {
	st := s.state
	at := op.due
	fail := func(msg string) {
		op.final = OperationFail
		op.details = map[string]any{"message": msg}
	}
	op.final = OperationSuccess
	if op.typ == opProjectArchive {
		p := st.projects[op.projectID]
		if p == nil {
			fail("project no longer exists")
			return
		}
		p.pending = nil
		for _, pl := range st.pools {
			if pl.projectID == p.id && pl.status != PoolArchived {
				fail("project has unarchived pools")
				return
			}
		}
		p.status = ProjectArchived
		p.render()
		return
	}
	p := st.pools[op.poolID]
	if p == nil {
		fail("pool no longer exists")
		return
	}
	p.pending = nil
	defer p.render()
	typ := op.typ
	if t, ok := poolOpOf[typ]; ok {
		typ = t
	}
	switch typ {
	case opPoolOpen:
		switch p.status {
		case PoolClosed:
			p.status = PoolOpen
			p.lastStarted = at
		case PoolArchived:
			fail("pool is archived")
		}
	case opPoolClose:
		if p.status == PoolOpen {
			p.status = PoolClosed
			p.lastCloseReason = "MANUAL"
			if op.closeReason != "" {
				p.lastCloseReason = op.closeReason
			}
			p.lastStopped = at
		}
	case opPoolArchive:
		switch p.status {
		case PoolClosed:
			p.status = PoolArchived
		case PoolOpen:
			fail("pool is open")
		}
	}
}

func (s *Server) getOperation(c *apiCall) response {
	id := c.r.PathValue("id")
	s.rlock(c.now)
	defer s.mu.RUnlock()
	op := s.state.ops[id]
	if op == nil || op.account != c.account {
		return s.errResp(errNotFound("operation", id))
	}
	return jsonResp(http.StatusOK, op.render(c.now, s.cfg.OperationDelay))
}

// sortedIDs sorts numeric string ids numerically.
func sortedIDs(ids []string) []string {
	slices.SortFunc(ids, func(a, b string) int {
		x, _ := parseID(a)
		y, _ := parseID(b)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return ids
}
