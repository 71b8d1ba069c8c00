package tolokasim

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// Pool statuses.
const (
	PoolOpen     = "OPEN"
	PoolClosed   = "CLOSED"
	PoolArchived = "ARCHIVED"
	PoolLocked   = "LOCKED"
)

// pool is a stored pool: the fields the client sent, byte for byte, plus
// the server's own.
type pool struct {
	id              uint64
	account         string
	projectID       uint64
	raw             map[string]json.RawMessage
	status          string
	lastCloseReason string
	created         time.Time
	lastStarted     time.Time
	lastStopped     time.Time
	pending         *operation
	// training: created with POST /trainings, served under /trainings only.
	training bool
	poolSettings
	json []byte
}

// poolSettings are the parsed fields the emulator acts on.
type poolSettings struct {
	willExpire     time.Time
	reward         money.Decimal
	maxDuration    time.Duration
	autoAccept     bool // auto_accept_solutions, default true
	autoAcceptDays int64
	typ            string
	// balance is speed_quality_balance (nil when unset).
	balance *speedQualityBalance
	// trainingID is quality_control.training_requirement.training_pool_id
	// (0 when unset): the training the pool links to.
	trainingID uint64
}

// speedQualityBalance is a pool's speed_quality_balance.
type speedQualityBalance struct {
	// typ is TOP_PERCENTAGE_BY_QUALITY or BEST_CONCURRENT_USERS_BY_QUALITY.
	typ string
	// percent or count, by typ.
	percent, count int64
}

func (p *pool) render() {
	m := make(map[string]json.RawMessage, len(p.raw)+10)
	for k, v := range p.raw {
		m[k] = v
	}
	m["id"] = rawJSON(formatID(p.id))
	m["project_id"] = rawJSON(formatID(p.projectID))
	m["status"] = rawJSON(p.status)
	m["created"] = rawJSON(FormatTime(p.created))
	if !p.training {
		m["type"] = rawJSON(p.typ)
	}
	m["owner"] = rawJSON(ownerOf(p.account))
	setTime := func(key string, t time.Time) {
		if t.IsZero() {
			delete(m, key)
		} else {
			m[key] = rawJSON(FormatTime(t))
		}
	}
	setTime("last_started", p.lastStarted)
	setTime("last_stopped", p.lastStopped)
	if p.lastCloseReason != "" {
		m["last_close_reason"] = rawJSON(p.lastCloseReason)
	} else {
		delete(m, "last_close_reason")
	}
	p.json = mustJSON(m)
}

// validatePool checks a pool body against seed 003. It returns the parsed
// settings and the referenced project id.
func validatePool(obj map[string]any, now time.Time) (poolSettings, uint64, fieldErrors) {
	c := newChecker()
	var ps poolSettings
	projectID, _ := c.idRef(obj, "project_id", "", true)
	c.str(obj, "private_name", "", true)
	c.str(obj, "private_comment", "", false)
	c.str(obj, "public_description", "", false)
	c.boolean(obj, "may_contain_adult_content", "", true)
	if t, ok := c.datetime(obj, "will_expire", "", true); ok {
		if !t.After(now) {
			c.fe.add("will_expire", FieldDateOutOfRange, "will_expire must be in the future, got %s (now %s)", FormatTime(t), FormatTime(now))
		}
		ps.willExpire = t
	}
	ps.reward, _ = c.decimal(obj, "reward_per_assignment", "", true, "0.01")
	var suiteOverlap, taskOverlap int64
	if d, ok := c.object(obj, "defaults", "", true); ok {
		suiteOverlap, _ = c.integer(d, "default_overlap_for_new_task_suites", "defaults", true, atLeast(1), noBound)
		taskOverlap, _ = c.integer(d, "default_overlap_for_new_tasks", "defaults", false, atLeast(1), noBound)
	}
	if secs, ok := c.integer(obj, "assignment_max_duration_seconds", "", true, atLeast(5), noBound); ok {
		ps.maxDuration = time.Duration(secs) * time.Second
	}
	ps.autoAccept = true
	if b, ok := c.boolean(obj, "auto_accept_solutions", "", false); ok {
		ps.autoAccept = b
	}
	ps.autoAcceptDays, _ = c.integer(obj, "auto_accept_period_day", "", false, atLeast(1), atMost(21))
	c.integer(obj, "auto_close_after_complete_delay_seconds", "", false, atLeast(0), atMost(259200))
	c.integer(obj, "priority", "", false, atLeast(-100), atMost(100))
	if ic, ok := c.object(obj, "assignments_issuing_config", "", false); ok {
		c.boolean(ic, "issue_task_suites_in_creation_order", "assignments_issuing_config", false)
	}
	c.object(obj, "filter", "", false)
	if qc, ok := c.object(obj, "quality_control", "", false); ok {
		ps.trainingID = c.qualityControl(qc, "quality_control", true)
	}
	if do, ok := c.object(obj, "dynamic_overlap_config", "", false); ok {
		const p = "dynamic_overlap_config"
		c.enum(do, "type", p, true, "BASIC")
		// Seed 003: max_overlap "Must be higher than the values in defaults".
		if mx, ok := c.integer(do, "max_overlap", p, true, atLeast(1), atMost(30000)); ok {
			for _, d := range []struct {
				key string
				v   int64
			}{{"default_overlap_for_new_task_suites", suiteOverlap}, {"default_overlap_for_new_tasks", taskOverlap}} {
				if d.v > 0 && mx <= d.v {
					c.fe.add(join(p, "max_overlap"), FieldValueLessThanMin,
						"%s.max_overlap (%d) must be higher than defaults.%s (%d)", p, mx, d.key, d.v)
					break
				}
			}
		}
		c.number(do, "min_confidence", p, true, "0", "1")
		c.idRef(do, "answer_weight_skill_id", p, true)
		if fields, ok := c.array(do, "fields", p, true); ok {
			for i, v := range fields {
				fp := index(join(p, "fields"), i)
				if f, ok := c.objectValue(v, fp); ok {
					c.str(f, "name", fp, true)
				}
			}
		}
	}
	if dp, ok := c.object(obj, "dynamic_pricing_config", "", false); ok {
		validatePricing(c, dp)
	}
	if mc, ok := c.object(obj, "mixer_config", "", false); ok {
		const p = "mixer_config"
		for _, k := range []string{"real_tasks_count", "golden_tasks_count", "training_tasks_count"} {
			c.integer(mc, k, p, true, atLeast(0), noBound)
		}
		c.number(mc, "min_real_tasks_count", p, false, "0", "")
		c.integer(mc, "min_golden_tasks_count", p, false, atLeast(0), noBound)
		c.integer(mc, "min_training_tasks_count", p, false, atLeast(0), noBound)
		c.boolean(mc, "force_last_assignment", p, false)
		c.integer(mc, "force_last_assignment_delay_seconds", p, false, atLeast(0), atMost(86400))
		c.boolean(mc, "mix_tasks_in_creation_order", p, false)
		c.boolean(mc, "shuffle_tasks_in_task_suite", p, false)
		for _, k := range []string{"golden_task_distribution_function", "training_task_distribution_function"} {
			if df, ok := c.object(mc, k, p, false); ok {
				c.distribution(df, join(p, k))
			}
		}
	}
	if sq, ok := c.object(obj, "speed_quality_balance", "", false); ok {
		const p = "speed_quality_balance"
		b := &speedQualityBalance{}
		b.typ, _ = c.enum(sq, "type", p, true, "TOP_PERCENTAGE_BY_QUALITY", "BEST_CONCURRENT_USERS_BY_QUALITY")
		switch b.typ {
		case "TOP_PERCENTAGE_BY_QUALITY":
			if v, ok := c.integer(sq, "percent", p, true, atLeast(10), atMost(100)); ok && v%10 != 0 {
				c.fe.add(join(p, "percent"), FieldInvalidValue, "percent must be a multiple of 10, got %d", v)
			} else {
				b.percent = v
			}
		case "BEST_CONCURRENT_USERS_BY_QUALITY":
			b.count, _ = c.integer(sq, "count", p, true, atLeast(1), noBound)
		}
		ps.balance = b
	}
	ps.typ = "REGULAR"
	if t, ok := c.enum(obj, "type", "", false, "REGULAR", "TRAINING"); ok {
		ps.typ = t
	}
	return ps, projectID, c.fe
}

// validatePricing checks dynamic_pricing_config: SKILL type, intervals
// within 0..100 that do not overlap.
func validatePricing(c *checker, dp map[string]any) {
	const p = "dynamic_pricing_config"
	c.enum(dp, "type", p, true, "SKILL")
	c.idRef(dp, "skill_id", p, true)
	intervals, ok := c.array(dp, "intervals", p, true)
	if !ok {
		return
	}
	type span struct {
		from, to int64
		i        int
	}
	var spans []span
	for i, v := range intervals {
		ip := index(join(p, "intervals"), i)
		iv, ok := c.objectValue(v, ip)
		if !ok {
			continue
		}
		from, to := int64(0), int64(100)
		okf, okt := true, true
		if _, present := get(iv, "from"); present {
			from, okf = c.integer(iv, "from", ip, false, atLeast(0), atMost(100))
		}
		if _, present := get(iv, "to"); present {
			to, okt = c.integer(iv, "to", ip, false, atLeast(0), atMost(100))
		}
		c.decimal(iv, "reward_per_assignment", ip, true, "0.01")
		if !okf || !okt {
			continue
		}
		if to < from {
			c.fe.add(join(ip, "to"), FieldInvalidValue, "%s.to (%d) must not be less than from (%d)", ip, to, from)
			continue
		}
		spans = append(spans, span{from, to, i})
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.from - b.from) })
	for k := 1; k < len(spans); k++ {
		if spans[k].from <= spans[k-1].to {
			ip := index(join(p, "intervals"), spans[k].i)
			c.fe.add(join(ip, "from"), FieldInvalidValue, "%s [%d, %d] overlaps interval %d [%d, %d]",
				ip, spans[k].from, spans[k].to, spans[k-1].i, spans[k-1].from, spans[k-1].to)
		}
	}
}

// trainingForPoolLocked checks that a pool's
// quality_control.training_requirement.training_pool_id (0: none) names a
// training of account, as a project_id must name a project of account.
func (s *Server) trainingForPoolLocked(account string, trainingID uint64) *Error {
	if trainingID == 0 {
		return nil
	}
	if t := s.state.pools[trainingID]; t == nil || t.account != account || !t.training {
		return singleFieldError("quality_control.training_requirement.training_pool_id", FieldEntityDoesNotExist,
			"training %s does not exist", formatID(trainingID))
	}
	return nil
}

// linkedPoolsLocked returns the ids of t's account's pools that are not
// ARCHIVED and link to training t through training_requirement.
func (s *Server) linkedPoolsLocked(t *pool) []string {
	var ids []string
	for _, pl := range s.state.pools {
		if pl.account == t.account && !pl.training && pl.trainingID == t.id && pl.status != PoolArchived {
			ids = append(ids, formatID(pl.id))
		}
	}
	return ids
}

// projectForPoolLocked checks that the pool's project exists, belongs to
// account and is ACTIVE.
func (s *Server) projectForPoolLocked(account string, projectID uint64) (*project, *Error) {
	pr := s.state.projects[projectID]
	if pr == nil || pr.account != account {
		return nil, singleFieldError("project_id", FieldEntityDoesNotExist, "project %s does not exist", formatID(projectID))
	}
	if pr.status != ProjectActive {
		return nil, errInappropriate("project "+formatID(projectID)+" is archived", ProjectActive)
	}
	if pr.pending != nil {
		return nil, errConflict("project %s is being archived", formatID(projectID))
	}
	return pr, nil
}

func (s *Server) createPool(c *apiCall) response {
	obj, raw, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	ps, projectID, fe := validatePool(obj, c.now)
	if e := fe.err(); e != nil {
		return s.errResp(e)
	}
	s.lock(c.now)
	defer s.mu.Unlock()
	if _, e := s.projectForPoolLocked(c.account, projectID); e != nil {
		return s.errResp(e)
	}
	if e := s.trainingForPoolLocked(c.account, ps.trainingID); e != nil {
		return s.errResp(e)
	}
	p := &pool{
		id:           s.newID(),
		account:      c.account,
		projectID:    projectID,
		raw:          raw,
		status:       PoolClosed,
		created:      c.now,
		poolSettings: ps,
	}
	p.render()
	s.state.pools[p.id] = p
	return jsonResp(http.StatusCreated, p.json)
}

// ownPoolLocked returns the caller's pool named by a path id.
func (s *Server) ownPoolLocked(account, pathID string) (*pool, *Error) {
	id, _ := parseID(pathID)
	p := s.state.pools[id]
	if p == nil || p.account != account || p.training {
		return nil, errNotFound("pool", pathID)
	}
	return p, nil
}

// ownTrainingLocked returns the caller's training named by a path id.
func (s *Server) ownTrainingLocked(account, pathID string) (*pool, *Error) {
	id, _ := parseID(pathID)
	p := s.state.pools[id]
	if p == nil || p.account != account || !p.training {
		return nil, errNotFound("training", pathID)
	}
	return p, nil
}

func (s *Server) getPool(c *apiCall) response {
	s.rlock(c.now)
	defer s.mu.RUnlock()
	p, e := s.ownPoolLocked(c.account, c.r.PathValue("id"))
	if e != nil {
		return s.errResp(e)
	}
	return jsonResp(http.StatusOK, p.json)
}

func (s *Server) editPool(c *apiCall) response {
	obj, raw, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	ps, projectID, fe := validatePool(obj, c.now)
	s.lock(c.now)
	defer s.mu.Unlock()
	p, e := s.ownPoolLocked(c.account, c.r.PathValue("id"))
	if e != nil {
		return s.errResp(e)
	}
	if p.status != PoolClosed {
		return s.errResp(errInappropriate("pool "+formatID(p.id)+" is "+p.status+"; close it before editing", PoolClosed))
	}
	if p.pending != nil {
		return s.errResp(errConflict("operation %s %s is in progress for pool %s", p.pending.typ, p.pending.id, formatID(p.id)))
	}
	if projectID != 0 && projectID != p.projectID {
		fe.add("project_id", FieldValueCannotBeChanged, "project_id cannot be changed (pool %s belongs to project %s)",
			formatID(p.id), formatID(p.projectID))
	}
	if e := fe.err(); e != nil {
		return s.errResp(e)
	}
	if e := s.trainingForPoolLocked(c.account, ps.trainingID); e != nil {
		return s.errResp(e)
	}
	p.raw = raw
	p.poolSettings = ps
	p.render()
	return jsonResp(http.StatusOK, p.json)
}

func (s *Server) patchPool(c *apiCall) response {
	obj, raw, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	ch := newChecker()
	for k := range obj {
		if k != "priority" {
			ch.fe.add(k, FieldValueNotAllowed, "only priority can be patched; use PUT /pools/{id} for %s", k)
		}
	}
	ch.integer(obj, "priority", "", true, atLeast(-100), atMost(100))
	if e := ch.fe.err(); e != nil {
		return s.errResp(e)
	}
	s.lock(c.now)
	defer s.mu.Unlock()
	p, e := s.ownPoolLocked(c.account, c.r.PathValue("id"))
	if e != nil {
		return s.errResp(e)
	}
	if p.status == PoolArchived {
		return s.errResp(errInappropriate("pool "+formatID(p.id)+" is archived", PoolOpen, PoolClosed))
	}
	p.raw["priority"] = raw["priority"]
	p.render()
	return jsonResp(http.StatusOK, p.json)
}

func (s *Server) listPools(c *apiCall) response {
	q := c.r.URL.Query()
	lq, e := parseListQuery(q, maxListLimit, numericKey)
	if e != nil {
		return s.errResp(e)
	}
	status := q.Get("status")
	switch status {
	case "", PoolOpen, PoolClosed, PoolArchived, PoolLocked:
	default:
		return s.errResp(singleFieldError("status", FieldUnknownEnumValue, "status must be OPEN, CLOSED, ARCHIVED or LOCKED, got %q", status))
	}
	var projectID uint64
	filterProject := q.Has("project_id")
	if filterProject {
		projectID, _ = parseID(q.Get("project_id"))
	}
	s.rlock(c.now)
	entries := make([]listEntry[uint64], 0, len(s.state.pools))
	for _, p := range s.state.pools {
		if p.account != c.account || p.training || (status != "" && p.status != status) || (filterProject && p.projectID != projectID) {
			continue
		}
		entries = append(entries, listEntry[uint64]{p.id, p.created, p.json})
	}
	s.mu.RUnlock()
	return jsonResp(http.StatusOK, page(lq, entries))
}

// poolAction returns the handler of POST /pools/{id}/open|close|archive.
func (s *Server) poolAction(typ string) apiHandler {
	return s.objectAction(typ, "", s.ownPoolLocked)
}

// objectAction returns the handler of an open, close or archive of a pool
// or a training (own finds it); closeReason is the close's
// last_close_reason when not MANUAL (close-for-update: FOR_UPDATE).
func (s *Server) objectAction(typ, closeReason string, own func(account, pathID string) (*pool, *Error)) apiHandler {
	kind := typ
	if t, ok := poolOpOf[typ]; ok {
		kind = t
	}
	return func(c *apiCall) response {
		s.lock(c.now)
		defer s.mu.Unlock()
		p, e := own(c.account, c.r.PathValue("id"))
		if e != nil {
			return s.errResp(e)
		}
		if p.pending != nil {
			if p.pending.typ == typ {
				return jsonResp(http.StatusAccepted, p.pending.render(c.now, s.cfg.OperationDelay))
			}
			return s.errResp(errConflict("operation %s %s is in progress for pool %s", p.pending.typ, p.pending.id, formatID(p.id)))
		}
		switch kind {
		case opPoolOpen:
			switch p.status {
			case PoolOpen:
				return response{status: http.StatusNoContent}
			case PoolArchived:
				return s.errResp(errInappropriate("an archived pool cannot be opened", PoolClosed))
			}
			if !p.training && !p.willExpire.After(c.now) {
				return s.errResp(errConflict("pool %s expired at %s; edit will_expire before opening it", formatID(p.id), FormatTime(p.willExpire)))
			}
		case opPoolClose:
			if p.status != PoolOpen {
				return response{status: http.StatusNoContent}
			}
		case opPoolArchive:
			switch p.status {
			case PoolArchived:
				return response{status: http.StatusNoContent}
			case PoolOpen:
				return s.errResp(errInappropriate("close pool "+formatID(p.id)+" before archiving it", PoolClosed))
			}
			// toloka-api-facts, Trainings: "Archive needs it closed and
			// its linked pools archived."
			if linked := s.linkedPoolsLocked(p); p.training && len(linked) > 0 {
				return s.errResp(&Error{Status: http.StatusConflict, Code: CodeUnarchivedPoolsConflict,
					Message: "training " + formatID(p.id) + " is linked from pools that are not archived; archive them first",
					Payload: map[string]any{"unarchived_pool_ids": sortedIDs(linked)}})
			}
		}
		op := s.startCloseOpLocked(typ, closeReason, c.account, p.id, 0, c.now)
		return jsonResp(http.StatusAccepted, op.render(c.now, s.cfg.OperationDelay))
	}
}
