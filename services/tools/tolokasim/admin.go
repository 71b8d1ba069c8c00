package tolokasim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// SetUser sets the state of Toloker userID that decides the flags of its
// external submits. Restricted adds (or, false, lifts) Toloka's own ban of
// the Toloker: a SYSTEM user restriction.
func (s *Server) SetUser(userID string, st UserState) {
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	sys := s.systemRestrictionLocked(userID)
	switch {
	case st.Restricted && sys == nil:
		r := &restriction{id: s.newID(), scope: ScopeSystem, userID: userID, created: now,
			raw: map[string]json.RawMessage{"scope": rawJSON(ScopeSystem), "user_id": rawJSON(userID)}}
		r.render()
		s.state.restrictions[r.id] = r
	case !st.Restricted && sys != nil:
		delete(s.state.restrictions, sys.id)
	}
	st.Restricted = false // kept as the SYSTEM restriction
	s.state.users[userID] = st
}

// User returns the state of Toloker userID (the zero UserState if unset);
// Restricted reports a SYSTEM restriction.
func (s *Server) User(userID string) UserState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.state.users[userID]
	st.Restricted = s.systemRestrictionLocked(userID) != nil
	return st
}

// SetFaults replaces the fault injection configuration (and reseeds the
// random source).
func (s *Server) SetFaults(f Faults) error { return s.faults.set(f) }

// Faults returns the current fault configuration, with FailNext and
// ThrottleNext counting what is left.
func (s *Server) Faults() Faults { return s.faults.get() }

// ClearFaults turns fault injection off.
func (s *Server) ClearFaults() { _ = s.faults.set(Faults{}) }

// Requests returns the recorded API requests whose path starts with
// pathPrefix (all when empty), oldest first.
func (s *Server) Requests(pathPrefix string) []RequestRecord { return s.reqlog.list(pathPrefix) }

// ClearRequests empties the request log.
func (s *Server) ClearRequests() { s.reqlog.clear() }

// adminRoutes registers the admin API under /_admin/. It needs no
// credentials: bind the emulator to a loopback address.
func (s *Server) adminRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /_admin/healthz", func(w http.ResponseWriter, r *http.Request) {
		s.adminJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("POST /_admin/api-keys", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Key     string `json:"key"`
			Account string `json:"account"`
		}
		if !s.adminDecode(w, r, &req) {
			return
		}
		if err := s.AddAPIKey(req.Key, req.Account); err != nil {
			s.adminError(w, errBadRequest("%v", err))
			return
		}
		s.logger.Info("API key added", "account", req.Account)
		s.adminJSON(w, http.StatusCreated, map[string]string{"account": req.Account})
	})
	m.HandleFunc("POST /_admin/assignments", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			PoolID flexID `json:"pool_id"`
			UserID string `json:"user_id"`
		}
		if !s.adminDecode(w, r, &req) {
			return
		}
		a, err := s.CreateAssignment(string(req.PoolID), req.UserID)
		if err != nil {
			s.adminError(w, err)
			return
		}
		s.adminRaw(w, http.StatusCreated, s.assignmentJSONFor(a.ID))
	})
	m.HandleFunc("GET /_admin/assignments/{id}", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.GetAssignment(r.PathValue("id")); err != nil {
			s.adminError(w, err)
			return
		}
		s.adminRaw(w, http.StatusOK, s.assignmentJSONFor(r.PathValue("id")))
	})
	m.HandleFunc("PUT /_admin/users/{user_id}", func(w http.ResponseWriter, r *http.Request) {
		var st UserState
		if !s.adminDecode(w, r, &st) {
			return
		}
		s.SetUser(r.PathValue("user_id"), st)
		s.adminJSON(w, http.StatusOK, st)
	})
	m.HandleFunc("GET /_admin/users/{user_id}", func(w http.ResponseWriter, r *http.Request) {
		s.adminJSON(w, http.StatusOK, s.User(r.PathValue("user_id")))
	})
	m.HandleFunc("GET /_admin/ledger", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		s.adminJSON(w, http.StatusOK, s.Ledger(LedgerFilter{Account: q.Get("account"), PoolID: q.Get("pool_id"), UserID: q.Get("user_id")}))
	})
	m.HandleFunc("GET /_admin/requests", func(w http.ResponseWriter, r *http.Request) {
		reqs := s.Requests(r.URL.Query().Get("path_prefix"))
		s.adminJSON(w, http.StatusOK, map[string]any{"requests": reqs, "count": len(reqs)})
	})
	m.HandleFunc("DELETE /_admin/requests", func(w http.ResponseWriter, r *http.Request) {
		s.ClearRequests()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET /_admin/faults", func(w http.ResponseWriter, r *http.Request) {
		s.adminJSON(w, http.StatusOK, s.Faults())
	})
	m.HandleFunc("POST /_admin/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if !s.adminDecode(w, r, &f) {
			return
		}
		if err := s.SetFaults(f); err != nil {
			s.adminError(w, errBadRequest("%v", err))
			return
		}
		s.logger.Info("faults set", "faults", fmt.Sprintf("%+v", s.Faults()))
		s.adminJSON(w, http.StatusOK, s.Faults())
	})
	m.HandleFunc("DELETE /_admin/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_admin/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		s.logger.Info("state reset")
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("/_admin/", func(w http.ResponseWriter, r *http.Request) {
		s.adminError(w, &Error{Status: http.StatusNotFound, Code: CodeDoesNotExist,
			Message: fmt.Sprintf("no admin method %s %s", r.Method, r.URL.Path)})
	})
}

// flexID accepts an id sent as a JSON string or number.
type flexID string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id must be a string or a number")
	}
	*f = flexID(n)
	return nil
}

// adminDecode reads a JSON body strictly (unknown fields are refused so a
// typo in a fault setting does not silently do nothing).
func (s *Server) adminDecode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		s.adminError(w, errBadRequest("cannot read body: %v", err))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.adminError(w, errBadRequest("invalid JSON body: %v", err))
		return false
	}
	return true
}

func (s *Server) adminJSON(w http.ResponseWriter, status int, v any) {
	s.adminRaw(w, status, mustJSON(v))
}

func (s *Server) adminRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) adminError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: err.Error()}
	}
	s.adminRaw(w, e.Status, errorJSON(e, s.newRequestID()))
}

// ParseAPIKeys reads "key=account,key2=account2" (the --api-keys flag).
func ParseAPIKeys(s string) (map[string]string, error) {
	keys := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, a, ok := strings.Cut(pair, "=")
		k, a = strings.TrimSpace(k), strings.TrimSpace(a)
		if !ok || k == "" || a == "" {
			// Never echo the pair: it holds a key.
			return nil, errors.New("api keys must be comma-separated key=account pairs")
		}
		keys[k] = a
	}
	return keys, nil
}
