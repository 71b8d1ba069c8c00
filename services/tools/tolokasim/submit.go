package tolokasim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// SubmitResponse is the answer of POST /tasks/external/submit (seed 001).
type SubmitResponse struct {
	// SpeedQualityBalanceMatch: the Toloker is a top performer
	// (UserState.TopPerformer).
	SpeedQualityBalanceMatch bool `json:"speed_quality_balance_match"`
	// RestrictionMatch: an active user restriction covers the pool: one of
	// the requester's (PUT /user-restrictions), or Toloka's own SYSTEM one
	// (UserState.Restricted).
	RestrictionMatch bool `json:"restriction_match"`
	// FilterMatch: the Toloker passes the pool's filters (not
	// UserState.FilteredOut).
	FilterMatch bool `json:"filter_match"`
}

// LedgerEntry is one recorded external submit: what Toloka would pay.
type LedgerEntry struct {
	// Account is the requester account that submitted.
	Account string `json:"account"`
	// PoolID is the pool's numeric id as a string.
	PoolID string `json:"pool_id"`
	// UserID is the Toloker.
	UserID string `json:"user_id"`
	// RetryID is the client's idempotency key (empty when not sent).
	RetryID string `json:"retry_id,omitempty"`
	// AssignmentID is the ACTIVE assignment the submit belonged to.
	AssignmentID string `json:"assignment_id"`
	// Reward is the reward exactly as sent.
	Reward money.Decimal `json:"reward"`
	// Quality is the quality exactly as sent (empty when absent).
	Quality json.Number `json:"quality,omitempty"`
	// CloseSession ended the Toloker's session (assignment SUBMITTED).
	CloseSession bool `json:"close_session"`
	// CustomLog is the antifraud JSON string as sent.
	CustomLog string `json:"custom_log,omitempty"`
	// StartTime and EndTime are the task times as sent.
	StartTime string `json:"start_time,omitempty"`
	EndTime   string `json:"end_time,omitempty"`
	// Skipped says the Toloker skipped the task.
	Skipped bool `json:"skipped"`
	// GoldenTasksCount, TrainingTasksCount and RealTasksCount are the task
	// counts as sent (0 when absent).
	GoldenTasksCount   int64 `json:"golden_tasks_count"`
	TrainingTasksCount int64 `json:"training_tasks_count"`
	RealTasksCount     int64 `json:"real_tasks_count"`
	// Response is the answer the submit got (repeated for duplicates).
	Response SubmitResponse `json:"response"`
	// DuplicatesRefused counts later submits with the same retry_id that
	// were answered from this entry and recorded nothing.
	DuplicatesRefused int `json:"duplicates_refused"`
	// Received is when the submit was recorded, by the server's clock.
	Received time.Time `json:"received"`
}

// LedgerFilter selects ledger entries; empty fields match everything.
type LedgerFilter struct {
	// Account selects one requester account.
	Account string
	// PoolID selects one pool (numeric id as a string).
	PoolID string
	// UserID selects one Toloker.
	UserID string
}

// LedgerReport is a filtered view of the ledger with exact totals.
type LedgerReport struct {
	// Entries are the matching submits, oldest first.
	Entries []LedgerEntry `json:"entries"`
	// Count is len(Entries).
	Count int `json:"count"`
	// RewardTotal is the exact sum of the entries' rewards.
	RewardTotal money.Decimal `json:"-"`
	// DuplicatesRefused sums the entries' DuplicatesRefused.
	DuplicatesRefused int `json:"duplicates_refused"`
}

// MarshalJSON renders RewardTotal as a decimal string ("12.34").
func (r LedgerReport) MarshalJSON() ([]byte, error) {
	type plain LedgerReport
	return json.Marshal(struct {
		plain
		RewardTotal string `json:"reward_total"`
	}{plain(r), r.RewardTotal.String()})
}

type retryKey struct {
	account string
	poolID  uint64
	retryID string
}

// Ledger returns the recorded submits that match f, oldest first.
func (s *Server) Ledger(f LedgerFilter) LedgerReport {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rep := LedgerReport{Entries: []LedgerEntry{}, RewardTotal: money.Zero}
	for _, e := range s.state.ledger {
		if (f.Account != "" && e.Account != f.Account) || (f.PoolID != "" && e.PoolID != f.PoolID) ||
			(f.UserID != "" && e.UserID != f.UserID) {
			continue
		}
		rep.Entries = append(rep.Entries, *e)
		rep.RewardTotal = rep.RewardTotal.Add(e.Reward)
		rep.DuplicatesRefused += e.DuplicatesRefused
	}
	rep.Count = len(rep.Entries)
	return rep
}

// submitRequest is a validated submit body.
type submitRequest struct {
	poolID uint64
	entry  LedgerEntry
}

func validateSubmit(obj map[string]any) (submitRequest, fieldErrors) {
	c := newChecker()
	var req submitRequest
	e := &req.entry
	// pool_id is a long: a JSON integer, or a string of digits.
	switch v, ok := get(obj, "pool_id"); {
	case !ok:
		c.missing("pool_id", true)
	default:
		var text string
		switch x := v.(type) {
		case json.Number:
			text = string(x)
		case string:
			text = x
		}
		id, err := strconv.ParseUint(text, 10, 64)
		if err != nil || id == 0 {
			c.fe.add("pool_id", FieldIntegerExpected, "pool_id must be a positive integer (long)")
		}
		req.poolID = id
	}
	e.UserID, _ = c.str(obj, "user_id", "", true)
	e.RetryID, _ = c.str(obj, "retry_id", "", false)
	e.Reward, _ = c.decimal(obj, "reward", "", true, "0")
	if v, ok := get(obj, "quality"); ok {
		if _, ok := c.numberValue(v, "quality", "0", "1"); ok {
			e.Quality = v.(json.Number)
		}
	}
	e.CloseSession, _ = c.boolean(obj, "close_session", "", false)
	if log, ok := c.str(obj, "custom_log", "", false); ok {
		if !json.Valid([]byte(log)) {
			c.fe.add("custom_log", FieldJSONExpected, "custom_log must be a string holding JSON")
		}
		e.CustomLog = log
	}
	start, okStart := c.datetime(obj, "start_time", "", false)
	end, okEnd := c.datetime(obj, "end_time", "", false)
	if okStart {
		e.StartTime = obj["start_time"].(string)
	}
	if okEnd {
		e.EndTime = obj["end_time"].(string)
	}
	if okStart && okEnd && end.Before(start) {
		c.fe.add("end_time", FieldInvalidValue, "end_time must not be before start_time")
	}
	e.Skipped, _ = c.boolean(obj, "skipped", "", false)
	e.GoldenTasksCount, _ = c.integer(obj, "golden_tasks_count", "", false, atLeast(0), noBound)
	e.TrainingTasksCount, _ = c.integer(obj, "training_tasks_count", "", false, atLeast(0), noBound)
	e.RealTasksCount, _ = c.integer(obj, "real_tasks_count", "", false, atLeast(0), noBound)
	return req, c.fe
}

// externalSubmit is POST /tasks/external/submit.
func (s *Server) externalSubmit(c *apiCall) response {
	obj, _, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	req, fe := validateSubmit(obj)
	if e := fe.err(); e != nil {
		return s.errResp(e)
	}
	entry := req.entry
	s.lock(c.now)
	defer s.mu.Unlock()
	st := s.state
	var rk retryKey
	if entry.RetryID != "" {
		rk = retryKey{c.account, req.poolID, entry.RetryID}
		if first := st.retries[rk]; first != nil {
			first.DuplicatesRefused++
			return jsonResp(http.StatusOK, mustJSON(first.Response))
		}
	}
	p := st.pools[req.poolID]
	if p == nil || p.account != c.account {
		return s.errResp(errNotFound("pool", formatID(req.poolID)))
	}
	if p.status != PoolOpen {
		return s.errResp(errInappropriate("pool "+formatID(p.id)+" is "+p.status, PoolOpen))
	}
	a := st.active[poolUser{p.id, entry.UserID}]
	if a != nil {
		s.refreshLocked(a, c.now)
	}
	if a == nil || a.Status != AssignmentActive {
		return s.errResp(errConflict("user %s has no ACTIVE assignment in pool %s", entry.UserID, formatID(p.id)))
	}
	user := st.users[entry.UserID]
	s.recordSubmitLocked(p, &entry, c.now)
	entry.Response = SubmitResponse{
		SpeedQualityBalanceMatch: user.TopPerformer,
		RestrictionMatch:         s.restrictedLocked(c.account, entry.UserID, p, c.now),
		FilterMatch:              !user.FilteredOut,
	}
	if user.Profile != nil {
		entry.Response.FilterMatch = entry.Response.FilterMatch && s.filterMatchLocked(c.account, p, entry.UserID, user.Profile)
	}
	if p.balance != nil {
		entry.Response.SpeedQualityBalanceMatch = s.balanceMatchLocked(p, entry.UserID)
	}
	// The pool's rules act after the answer, as Toloka's quality control
	// runs after a submit: a ban shows in the next submit's answer.
	defer s.evaluateLocked(c.account, p, entry.UserID, c.now)
	entry.Account = c.account
	entry.PoolID = formatID(p.id)
	entry.AssignmentID = a.ID
	entry.Received = c.now
	stored := &entry
	st.ledger = append(st.ledger, stored)
	if entry.RetryID != "" {
		st.retries[rk] = stored
	}
	a.Reward = a.Reward.Add(entry.Reward)
	if entry.CloseSession {
		a.Status = AssignmentSubmitted
		a.Submitted = c.now
		delete(st.active, poolUser{p.id, a.UserID})
		if s.cfg.HonorAutoAccept {
			switch {
			case p.autoAccept:
				a.Status = AssignmentAccepted
				a.Accepted = c.now
			case p.autoAcceptDays > 0:
				a.autoAcceptAt = c.now.Add(time.Duration(p.autoAcceptDays) * 24 * time.Hour)
			}
		}
	}
	a.render()
	return jsonResp(http.StatusOK, mustJSON(entry.Response))
}
