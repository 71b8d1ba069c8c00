package tolokasim

import (
	"net/http"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// neverExpires is a training's will_expire: trainings do not expire.
var neverExpires = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// validateTraining checks a training body (Toloka's /trainings: project_id,
// private_name, inherited_instructions and
// training_tasks_in_task_suite_count required).
func validateTraining(obj map[string]any) (poolSettings, uint64, fieldErrors) {
	c := newChecker()
	ps := poolSettings{typ: "TRAINING", willExpire: neverExpires, reward: money.Zero, autoAccept: true}
	projectID, _ := c.idRef(obj, "project_id", "", true)
	c.str(obj, "private_name", "", true)
	c.str(obj, "private_comment", "", false)
	c.boolean(obj, "may_contain_adult_content", "", false)
	c.boolean(obj, "inherited_instructions", "", true)
	c.str(obj, "public_instructions", "", false)
	if secs, ok := c.integer(obj, "assignment_max_duration_seconds", "", false, atLeast(5), noBound); ok {
		ps.maxDuration = time.Duration(secs) * time.Second
	}
	c.boolean(obj, "mix_tasks_in_creation_order", "", false)
	c.boolean(obj, "shuffle_tasks_in_task_suite", "", false)
	c.integer(obj, "training_tasks_in_task_suite_count", "", true, atLeast(0), atMost(500))
	c.integer(obj, "task_suites_required_to_pass", "", false, atLeast(0), atMost(500))
	c.integer(obj, "retry_training_after_days", "", false, atLeast(1), noBound)
	c.object(obj, "metadata", "", false)
	return ps, projectID, c.fe
}

// createTraining is POST /trainings: a training, stored with the pools
// (one id space) and served under /trainings only.
func (s *Server) createTraining(c *apiCall) response {
	obj, raw, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	ps, projectID, fe := validateTraining(obj)
	if e := fe.err(); e != nil {
		return s.errResp(e)
	}
	s.lock(c.now)
	defer s.mu.Unlock()
	if _, e := s.projectForPoolLocked(c.account, projectID); e != nil {
		return s.errResp(e)
	}
	p := &pool{id: s.newID(), account: c.account, projectID: projectID, raw: raw, status: PoolClosed,
		created: c.now, training: true, poolSettings: ps}
	p.render()
	s.state.pools[p.id] = p
	return jsonResp(http.StatusCreated, p.json)
}

func (s *Server) getTraining(c *apiCall) response {
	s.rlock(c.now)
	defer s.mu.RUnlock()
	p, e := s.ownTrainingLocked(c.account, c.r.PathValue("id"))
	if e != nil {
		return s.errResp(e)
	}
	return jsonResp(http.StatusOK, p.json)
}

// editTraining is PUT /trainings/{id}; the training must be closed.
func (s *Server) editTraining(c *apiCall) response {
	obj, raw, e := decodeObject(c.body)
	if e != nil {
		return s.errResp(e)
	}
	ps, projectID, fe := validateTraining(obj)
	s.lock(c.now)
	defer s.mu.Unlock()
	p, e := s.ownTrainingLocked(c.account, c.r.PathValue("id"))
	if e != nil {
		return s.errResp(e)
	}
	if p.status != PoolClosed {
		return s.errResp(errInappropriate("training "+formatID(p.id)+" is "+p.status+"; close it before editing", PoolClosed))
	}
	if projectID != 0 && projectID != p.projectID {
		fe.add("project_id", FieldValueCannotBeChanged, "project_id cannot be changed")
	}
	if e := fe.err(); e != nil {
		return s.errResp(e)
	}
	p.raw, p.poolSettings = raw, ps
	p.render()
	return jsonResp(http.StatusOK, p.json)
}

// listTrainings is GET /trainings, filtered by project_id and status.
func (s *Server) listTrainings(c *apiCall) response {
	q := c.r.URL.Query()
	lq, e := parseListQuery(q, maxListLimit, numericKey)
	if e != nil {
		return s.errResp(e)
	}
	status := q.Get("status")
	projectID, filterProject := uint64(0), q.Has("project_id")
	if filterProject {
		projectID, _ = parseID(q.Get("project_id"))
	}
	s.rlock(c.now)
	entries := make([]listEntry[uint64], 0)
	for _, p := range s.state.pools {
		if p.account != c.account || !p.training || (status != "" && p.status != status) || (filterProject && p.projectID != projectID) {
			continue
		}
		entries = append(entries, listEntry[uint64]{p.id, p.created, p.json})
	}
	s.mu.RUnlock()
	return jsonResp(http.StatusOK, page(lq, entries))
}
