package tolokasim

import (
	"encoding/json"
	"net/http"
	"time"
)

// Restriction scopes.
const (
	ScopeAllProjects = "ALL_PROJECTS"
	ScopeProject     = "PROJECT"
	ScopePool        = "POOL"
)

// restriction is a stored user restriction (a ban set by a requester).
type restriction struct {
	id         uint64
	account    string
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

// restrictedLocked reports whether account has an active restriction of
// userID that covers pool p.
func (s *Server) restrictedLocked(account, userID string, p *pool, now time.Time) bool {
	for _, r := range s.state.restrictions {
		if r.account != account || r.userID != userID || (!r.willExpire.IsZero() && !now.Before(r.willExpire)) {
			continue
		}
		switch r.scope {
		case ScopeAllProjects:
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
	ch.str(obj, "private_comment", "", false)
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
	if r == nil || r.account != c.account {
		return s.errResp(errNotFound("user restriction", pathID))
	}
	return jsonResp(http.StatusOK, r.json)
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
