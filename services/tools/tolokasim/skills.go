package tolokasim

import (
	"net/http"
	"time"
)

// maxSkillLimit and maxUserSkillLimit bound limit on GET /skills and GET
// /user-skills (toloka-kit's bounds).
const (
	maxSkillLimit     = 100
	maxUserSkillLimit = 1000
)

// skill is a requester's skill (POST /skills).
type skill struct {
	id      uint64
	account string
	name    string
	created time.Time
	json    []byte
}

type skillJSON struct {
	ID                         string            `json:"id"`
	Name                       string            `json:"name"`
	PrivateComment             string            `json:"private_comment,omitempty"`
	Hidden                     bool              `json:"hidden"`
	SkillTTLHours              *int64            `json:"skill_ttl_hours,omitempty"`
	PublicName                 map[string]string `json:"public_name,omitempty"`
	PublicRequesterDescription map[string]string `json:"public_requester_description,omitempty"`
	Training                   bool              `json:"training"`
	Global                     bool              `json:"global"`
	Owner                      owner             `json:"owner"`
	Created                    string            `json:"created"`
}

// createSkill is POST /skills: name is required; hidden defaults to true.
func (s *Server) createSkill(c *apiCall) response {
	obj, _, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	ch := newChecker()
	out := skillJSON{Hidden: true, Owner: ownerOf(c.account)}
	out.Name, _ = ch.str(obj, "name", "", true)
	out.PrivateComment, _ = ch.str(obj, "private_comment", "", false)
	if h, ok := ch.boolean(obj, "hidden", "", false); ok {
		out.Hidden = h
	}
	if ttl, ok := ch.integer(obj, "skill_ttl_hours", "", false, atLeast(1), noBound); ok {
		out.SkillTTLHours = &ttl
	}
	for _, f := range []struct {
		key string
		dst *map[string]string
	}{{"public_name", &out.PublicName}, {"public_requester_description", &out.PublicRequesterDescription}} {
		m, ok := ch.object(obj, f.key, "", false)
		if !ok {
			continue
		}
		*f.dst = map[string]string{}
		for lang := range m {
			if v, ok := ch.str(m, lang, f.key, true); ok {
				(*f.dst)[lang] = v
			}
		}
	}
	if e := ch.fe.err(); e != nil {
		return s.errResp(e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sk := &skill{id: s.newID(), account: c.account, name: out.Name, created: c.now}
	out.ID, out.Created = formatID(sk.id), FormatTime(c.now)
	sk.json = mustJSON(out)
	s.state.skillDefs[sk.id] = sk
	return jsonResp(http.StatusCreated, sk.json)
}

func (s *Server) getSkill(c *apiCall) response {
	pathID := c.r.PathValue("id")
	id, _ := parseID(pathID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	sk := s.state.skillDefs[id]
	if sk == nil || sk.account != c.account {
		return s.errResp(errNotFound("skill", pathID))
	}
	return jsonResp(http.StatusOK, sk.json)
}

// listSkills is GET /skills, filtered by name.
func (s *Server) listSkills(c *apiCall) response {
	q := c.r.URL.Query()
	lq, e := parseListQuery(q, maxSkillLimit, numericKey)
	if e != nil {
		return s.errResp(e)
	}
	name := q.Get("name")
	s.mu.RLock()
	entries := make([]listEntry[uint64], 0)
	for _, sk := range s.state.skillDefs {
		if sk.account == c.account && (name == "" || sk.name == name) {
			entries = append(entries, listEntry[uint64]{sk.id, sk.created, sk.json})
		}
	}
	s.mu.RUnlock()
	return jsonResp(http.StatusOK, page(lq, entries))
}

func (s *Server) getUserSkill(c *apiCall) response {
	pathID := c.r.PathValue("id")
	id, _ := parseID(pathID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	us := s.state.skills[id]
	if us == nil || us.key.account != c.account {
		return s.errResp(errNotFound("user skill", pathID))
	}
	return jsonResp(http.StatusOK, us.json)
}

// listUserSkills is GET /user-skills, filtered by user_id and skill_id.
func (s *Server) listUserSkills(c *apiCall) response {
	q := c.r.URL.Query()
	lq, e := parseListQuery(q, maxUserSkillLimit, numericKey)
	if e != nil {
		return s.errResp(e)
	}
	userID, skillID := q.Get("user_id"), q.Get("skill_id")
	s.mu.RLock()
	entries := make([]listEntry[uint64], 0)
	for _, us := range s.state.skills {
		if us.key.account != c.account || (userID != "" && us.key.userID != userID) || (skillID != "" && us.key.skillID != skillID) {
			continue
		}
		entries = append(entries, listEntry[uint64]{us.id, us.created, us.json})
	}
	s.mu.RUnlock()
	return jsonResp(http.StatusOK, page(lq, entries))
}

// deleteUserSkill is DELETE /user-skills/{id}: 204, or 404.
func (s *Server) deleteUserSkill(c *apiCall) response {
	pathID := c.r.PathValue("id")
	id, _ := parseID(pathID)
	s.mu.Lock()
	defer s.mu.Unlock()
	us := s.state.skills[id]
	if us == nil || us.key.account != c.account {
		return s.errResp(errNotFound("user skill", pathID))
	}
	delete(s.state.skills, id)
	delete(s.state.skillIndex, us.key)
	return response{status: http.StatusNoContent}
}
