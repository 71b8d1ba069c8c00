package tolokasim

import (
	"encoding/json"
	"net/http"
	"time"
	"unicode/utf8"
)

// maxRestrictionCommentRunes bounds a user restriction's private_comment
// (toloka-api-facts, User restrictions: "private_comment (max 499)").
const maxRestrictionCommentRunes = 499

// Restriction scopes.
const (
	ScopeAllProjects = "ALL_PROJECTS"
	ScopeProject     = "PROJECT"
	ScopePool        = "POOL"
	// ScopeSystem is Toloka's own ban of a Toloker (the admin API's
	// "restricted"): every requester lists it, none may create or delete
	// it, and it covers every pool.
	ScopeSystem = "SYSTEM"
)

// restriction is a stored user restriction (a ban set by a requester, or a
// SYSTEM one with no account).
type restriction struct {
	id         uint64
	account    string // "" for SYSTEM
	scope      string
	userID     string
	projectID  uint64
	poolID     uint64
	willExpire time.Time // zero: permanent
	raw        map[string]json.RawMessage
	created    time.Time
	json       []byte
}

func (r *restriction) render() {
	m := make(map[string]json.RawMessage, len(r.raw)+2)
	for k, v := range r.raw {
		m[k] = v
	}
	m["id"] = rawJSON(formatID(r.id))
	m["created"] = rawJSON(FormatTime(r.created))
	if r.projectID != 0 {
		m["project_id"] = rawJSON(formatID(r.projectID))
	}
	if r.poolID != 0 {
		m["pool_id"] = rawJSON(formatID(r.poolID))
	}
	r.json = mustJSON(m)
}

// visibleTo reports whether account may read r: its own, and SYSTEM ones.
func (r *restriction) visibleTo(account string) bool {
	return r.account == account || r.scope == ScopeSystem
}

// systemRestrictionLocked returns userID's SYSTEM restriction, or nil.
func (s *Server) systemRestrictionLocked(userID string) *restriction {
	for _, r := range s.state.restrictions {
		if r.scope == ScopeSystem && r.userID == userID {
			return r
		}
	}
	return nil
}

// restrictedLocked reports whether an active restriction of userID that
// account sees (its own, or a SYSTEM one) covers pool p: what
// restriction_match answers.
func (s *Server) restrictedLocked(account, userID string, p *pool, now time.Time) bool {
	for _, r := range s.state.restrictions {
		if !r.visibleTo(account) || r.userID != userID || (!r.willExpire.IsZero() && !now.Before(r.willExpire)) {
			continue
		}
		switch r.scope {
		case ScopeSystem, ScopeAllProjects:
			return true
		case ScopeProject:
			if r.projectID == p.projectID {
				return true
			}
		case ScopePool:
			if r.poolID == p.id {
				return true
			}
		}
	}
	return false
}

// putRestriction is PUT /user-restrictions. A restriction with the same
// account, scope, user and target is replaced (same id).
func (s *Server) putRestriction(c *apiCall) response {
	obj, raw, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	ch := newChecker()
	r := &restriction{account: c.account, raw: raw, created: c.now}
	r.scope, _ = ch.enum(obj, "scope", "", true, ScopeAllProjects, ScopeProject, ScopePool)
	r.userID, _ = ch.str(obj, "user_id", "", true)
	if comment, ok := ch.str(obj, "private_comment", "", false); ok && utf8.RuneCountInString(comment) > maxRestrictionCommentRunes {
		ch.fe.add("private_comment", FieldStringTooLong, "private_comment must be at most %d characters, got %d",
			maxRestrictionCommentRunes, utf8.RuneCountInString(comment))
	}
	r.willExpire, _ = ch.datetime(obj, "will_expire", "", false)
	switch r.scope {
	case ScopeProject:
		r.projectID, _ = ch.idRef(obj, "project_id", "", true)
	case ScopePool:
		r.poolID, _ = ch.idRef(obj, "pool_id", "", true)
	}
	if e := ch.fe.err(); e != nil {
		return s.errResp(e)
	}
	s.lock(c.now)
	defer s.mu.Unlock()
	st := s.state
	switch r.scope {
	case ScopeProject:
		if p := st.projects[r.projectID]; p == nil || p.account != c.account {
			return s.errResp(singleFieldError("project_id", FieldEntityDoesNotExist, "project does not exist"))
		}
	case ScopePool:
		if p := st.pools[r.poolID]; p == nil || p.account != c.account {
			return s.errResp(singleFieldError("pool_id", FieldEntityDoesNotExist, "pool does not exist"))
		}
	}
	for _, old := range st.restrictions {
		if old.account == r.account && old.scope == r.scope && old.userID == r.userID &&
			old.projectID == r.projectID && old.poolID == r.poolID {
			r.id = old.id
			break
		}
	}
	if r.id == 0 {
		r.id = s.newID()
	}
	r.render()
	st.restrictions[r.id] = r
	return jsonResp(http.StatusOK, r.json)
}

func (s *Server) getRestriction(c *apiCall) response {
	pathID := c.r.PathValue("id")
	id, _ := parseID(pathID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.state.restrictions[id]
	if r == nil || !r.visibleTo(c.account) {
		return s.errResp(errNotFound("user restriction", pathID))
	}
	return jsonResp(http.StatusOK, r.json)
}

// listRestrictions is GET /user-restrictions: the account's restrictions
// and the SYSTEM ones, filtered by scope, user_id, project_id and pool_id,
// with the common list parameters.
func (s *Server) listRestrictions(c *apiCall) response {
	q := c.r.URL.Query()
	lq, e := parseListQuery(q, maxRestrictionLimit, numericKey)
	if e != nil {
		return s.errResp(e)
	}
	scope := q.Get("scope")
	switch scope {
	case "", ScopeAllProjects, ScopeProject, ScopePool, ScopeSystem:
	default:
		return s.errResp(singleFieldError("scope", FieldUnknownEnumValue, "scope must be ALL_PROJECTS, PROJECT, POOL or SYSTEM, got %q", scope))
	}
	var projectID, poolID uint64
	for name, dst := range map[string]*uint64{"project_id": &projectID, "pool_id": &poolID} {
		if v := q.Get(name); v != "" {
			id, ok := parseID(v)
			if !ok {
				return s.errResp(singleFieldError(name, FieldInvalidValue, "%s must be an id, got %q", name, v))
			}
			*dst = id
		}
	}
	userID := q.Get("user_id")
	s.mu.RLock()
	entries := make([]listEntry[uint64], 0)
	for _, r := range s.state.restrictions {
		if !r.visibleTo(c.account) || (scope != "" && r.scope != scope) || (userID != "" && r.userID != userID) ||
			(projectID != 0 && r.projectID != projectID) || (poolID != 0 && r.poolID != poolID) {
			continue
		}
		entries = append(entries, listEntry[uint64]{r.id, r.created, r.json})
	}
	s.mu.RUnlock()
	return jsonResp(http.StatusOK, page(lq, entries))
}

func (s *Server) deleteRestriction(c *apiCall) response {
	pathID := c.r.PathValue("id")
	id, _ := parseID(pathID)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.state.restrictions[id]
	if r == nil || r.account != c.account {
		return s.errResp(errNotFound("user restriction", pathID))
	}
	delete(s.state.restrictions, id)
	return response{status: http.StatusNoContent}
}

type skillKey struct {
	account string
	skillID string
	userID  string
}

// userSkill is a Toloker's skill value set by a requester.
type userSkill struct {
	id       uint64
	key      skillKey
	value    json.Number
	reason   string
	created  time.Time
	modified time.Time
	json     []byte
}

type userSkillJSON struct {
	ID       string      `json:"id"`
	SkillID  string      `json:"skill_id"`
	UserID   string      `json:"user_id"`
	Value    json.Number `json:"value"`
	Reason   string      `json:"reason,omitempty"`
	Created  string      `json:"created"`
	Modified string      `json:"modified"`
}

// putUserSkill is PUT /user-skills: it sets (or replaces) the value of a
// skill for a Toloker.
func (s *Server) putUserSkill(c *apiCall) response {
	obj, _, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	ch := newChecker()
	var skillID string
	if v, ok := get(obj, "skill_id"); !ok {
		ch.missing("skill_id", true)
	} else {
		switch x := v.(type) {
		case string:
			skillID = x
		case json.Number:
			skillID = string(x)
		default:
			ch.fe.add("skill_id", FieldStringExpected, "skill_id must be a string id")
		}
	}
	userID, _ := ch.str(obj, "user_id", "", true)
	var value json.Number
	if _, ok := ch.number(obj, "value", "", true, "0", "100"); ok {
		value = obj["value"].(json.Number)
	}
	reason, _ := ch.str(obj, "reason", "", false)
	if e := ch.fe.err(); e != nil {
		return s.errResp(e)
	}
	key := skillKey{c.account, skillID, userID}
	s.mu.Lock()
	defer s.mu.Unlock()
	us := s.state.skillIndex[key]
	if us == nil {
		us = &userSkill{id: s.newID(), key: key, created: c.now}
		s.state.skillIndex[key] = us
		s.state.skills[us.id] = us
	}
	us.value, us.reason, us.modified = value, reason, c.now
	us.json = mustJSON(userSkillJSON{
		ID: formatID(us.id), SkillID: skillID, UserID: userID, Value: value, Reason: reason,
		Created: FormatTime(us.created), Modified: FormatTime(us.modified),
	})
	return jsonResp(http.StatusOK, us.json)
}
