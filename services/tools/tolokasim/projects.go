package tolokasim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// Project statuses.
const (
	ProjectActive   = "ACTIVE"
	ProjectArchived = "ARCHIVED"
)

// project is a stored project: the fields the client sent, byte for byte,
// plus the server's own.
type project struct {
	id      uint64
	account string
	raw     map[string]json.RawMessage
	status  string
	created time.Time
	pending *operation // PROJECT.ARCHIVE in progress
	json    []byte
}

func (p *project) render() {
	m := make(map[string]json.RawMessage, len(p.raw)+5)
	for k, v := range p.raw {
		m[k] = v
	}
	if v, ok := m["assignments_issuing_type"]; !ok || string(v) == "null" {
		m["assignments_issuing_type"] = rawJSON("AUTOMATED")
	}
	m["id"] = rawJSON(formatID(p.id))
	m["status"] = rawJSON(p.status)
	m["created"] = rawJSON(FormatTime(p.created))
	m["owner"] = rawJSON(ownerOf(p.account))
	p.json = mustJSON(m)
}

// rawJSON marshals a value that cannot fail to marshal.
func rawJSON(v any) json.RawMessage { return mustJSON(v) }

// mustJSON marshals v without HTML escaping, so stored fields such as
// public_instructions come back with the characters the client sent.
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("tolokasim: marshal: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// validateProject checks a project body against seed 002 and seed 001.
func validateProject(obj map[string]any) fieldErrors {
	c := newChecker()
	c.str(obj, "public_name", "", true)
	c.str(obj, "public_description", "", true)
	c.str(obj, "public_instructions", "", false)
	c.str(obj, "private_comment", "", false)
	if ts, ok := c.object(obj, "task_spec", "", true); ok {
		if in, ok := c.object(ts, "input_spec", "task_spec", true); ok {
			c.fieldSpecs(in, "task_spec.input_spec", false)
		}
		if out, ok := c.object(ts, "output_spec", "task_spec", true); ok {
			c.fieldSpecs(out, "task_spec.output_spec", true)
		}
		c.object(ts, "view_spec", "task_spec", false)
	}
	issuing, _ := c.enum(obj, "assignments_issuing_type", "", false, "AUTOMATED", "MAP_SELECTOR", "EXTERNAL")
	const vcKey = "assignments_issuing_view_config"
	vc, hasVC := c.object(obj, vcKey, "", false)
	switch issuing {
	case "EXTERNAL":
		p := join(vcKey, "redirect_url")
		if !hasVC {
			if _, present := get(obj, vcKey); !present {
				c.missing(p, true)
			}
			break
		}
		if u, ok := c.str(vc, "redirect_url", vcKey, true); ok && !httpURL(u) {
			c.fe.add(p, FieldInvalidURL, "%s must be an absolute http or https URL, got %q", p, u)
		}
	case "MAP_SELECTOR":
		if !hasVC {
			if _, present := get(obj, vcKey); !present {
				c.missing(vcKey, true)
			}
			break
		}
		c.str(vc, "title_template", vcKey, true)
		c.str(vc, "description_template", vcKey, true)
		c.enum(vc, "map_provider", vcKey, false, "GOOGLE", "YANDEX")
	}
	c.boolean(obj, "assignments_automerge_enabled", "", false)
	c.integer(obj, "max_active_assignments_count", "", false, atLeast(1), noBound)
	if md, ok := c.object(obj, "metadata", "", false); ok {
		for k, v := range md {
			p := join("metadata", k)
			list, ok := v.([]any)
			if !ok {
				c.fe.add(p, FieldArrayExpected, "%s must be an array of strings", p)
				continue
			}
			for i, item := range list {
				c.strValue(item, index(p, i), false)
			}
		}
	}
	if qc, ok := c.object(obj, "quality_control", "", false); ok {
		c.qualityControl(qc, "quality_control", false)
	}
	c.object(obj, "localization_config", "", false)
	return c.fe
}

func (s *Server) createProject(c *apiCall) response {
	obj, raw, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	if e := validateProject(obj).err(); e != nil {
		return s.errResp(e)
	}
	p := &project{id: s.newID(), account: c.account, raw: raw, status: ProjectActive, created: c.now}
	p.render()
	s.lock(c.now)
	s.state.projects[p.id] = p
	s.mu.Unlock()
	return jsonResp(http.StatusCreated, p.json)
}

// ownProjectLocked returns the caller's project named by a path id.
func (s *Server) ownProjectLocked(account, pathID string) (*project, *Error) {
	id, _ := parseID(pathID)
	p := s.state.projects[id]
	if p == nil || p.account != account {
		return nil, errNotFound("project", pathID)
	}
	return p, nil
}

func (s *Server) getProject(c *apiCall) response {
	s.rlock(c.now)
	defer s.mu.RUnlock()
	p, e := s.ownProjectLocked(c.account, c.r.PathValue("id"))
	if e != nil {
		return s.errResp(e)
	}
	return jsonResp(http.StatusOK, p.json)
}

func (s *Server) editProject(c *apiCall) response {
	obj, raw, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	if e := validateProject(obj).err(); e != nil {
		return s.errResp(e)
	}
	s.lock(c.now)
	defer s.mu.Unlock()
	p, e := s.ownProjectLocked(c.account, c.r.PathValue("id"))
	if e != nil {
		return s.errResp(e)
	}
	if p.status != ProjectActive {
		return s.errResp(errInappropriate("an archived project cannot be edited", ProjectActive))
	}
	p.raw = raw
	p.render()
	return jsonResp(http.StatusOK, p.json)
}

func (s *Server) listProjects(c *apiCall) response {
	q := c.r.URL.Query()
	lq, e := parseListQuery(q, maxListLimit, numericKey)
	if e != nil {
		return s.errResp(e)
	}
	status := q.Get("status")
	if status != "" && status != ProjectActive && status != ProjectArchived {
		return s.errResp(singleFieldError("status", FieldUnknownEnumValue, "status must be ACTIVE or ARCHIVED, got %q", status))
	}
	s.rlock(c.now)
	entries := make([]listEntry[uint64], 0, len(s.state.projects))
	for _, p := range s.state.projects {
		if p.account == c.account && (status == "" || p.status == status) {
			entries = append(entries, listEntry[uint64]{p.id, p.created, p.json})
		}
	}
	s.mu.RUnlock()
	return jsonResp(http.StatusOK, page(lq, entries))
}

func (s *Server) archiveProject(c *apiCall) response {
	s.lock(c.now)
	defer s.mu.Unlock()
	p, e := s.ownProjectLocked(c.account, c.r.PathValue("id"))
	if e != nil {
		return s.errResp(e)
	}
	if p.pending != nil {
		return jsonResp(http.StatusAccepted, p.pending.render(c.now, s.cfg.OperationDelay))
	}
	if p.status == ProjectArchived {
		return response{status: http.StatusNoContent}
	}
	var open []string
	for _, pl := range s.state.pools {
		if pl.projectID == p.id && pl.status != PoolArchived {
			open = append(open, formatID(pl.id))
		}
	}
	if len(open) > 0 {
		return s.errResp(&Error{Status: http.StatusConflict, Code: CodeUnarchivedPoolsConflict,
			Message: "all pools of the project must be archived first",
			Payload: map[string]any{"unarchived_pool_ids": sortedIDs(open)}})
	}
	op := s.startOpLocked(opProjectArchive, c.account, 0, p.id, c.now)
	return jsonResp(http.StatusAccepted, op.render(c.now, s.cfg.OperationDelay))
}
