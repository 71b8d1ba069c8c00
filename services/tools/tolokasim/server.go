// Package tolokasim is an offline emulator of the Toloka API, the
// crowdsourcing platform Crowdgate fronts.
//
// It serves the part of https://toloka.dev/api/v1 that Crowdgate uses:
// projects, pools and their operations (open, close, archive), assignments
// of the EXTERNAL issuing flow, POST /tasks/external/submit, user
// restrictions and user skills. It follows Toloka's documents: error bodies
// {"request_id", "code", "message", "payload"}, field-keyed validation
// payloads, 202 + Operation for state changes, {"items", "has_more"} lists,
// ApiKey/OAuth authentication and the documented rate limits.
//
// Beyond the API it offers an admin API under /_admin/ (no authentication)
// and the same controls as Go methods, so Crowdgate's tests, demos and load
// tools can start assignments as a Toloker would, set per-Toloker state,
// read the exact ledger of submits, see every request a client sent, and
// inject faults (errors, throttling, hangs, dropped connections and lost
// responses) from a seeded random source.
//
// All state lives in memory behind one RWMutex. Time-dependent behaviour
// (operation completion, assignment expiry, pool will_expire, rate-limit
// windows) reads Config.Now, so tests drive it with a fake clock.
package tolokasim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the emulator. It implements http.Handler; create it with New.
type Server struct {
	cfg     Config
	now     func() time.Time
	logger  *slog.Logger
	mux     *http.ServeMux
	keys    atomic.Pointer[map[string]string] // API key -> account, copy on write
	keysMu  sync.Mutex                        // serialises key writers
	faults  faultInjector
	limiter *rateLimiter
	reqlog  *requestLog
	reqSeq  atomic.Uint64
	// Id counters survive Reset so ids are never reused by one Server.
	idSeq  atomic.Uint64 // projects, pools, restrictions, skills
	opSeq  atomic.Uint64
	asgSeq atomic.Uint64

	done      chan struct{} // closed by Close: releases hanging requests
	closeOnce sync.Once

	mu    sync.RWMutex
	state *state
}

// state is everything Reset clears. Guarded by Server.mu.
type state struct {
	projects     map[uint64]*project
	pools        map[uint64]*pool
	ops          map[string]*operation
	pendingOps   []*operation // by due time
	nextDue      time.Time    // earliest pending op or open pool will_expire; zero if none
	assignments  map[string]*assignment
	active       map[poolUser]*assignment // the ACTIVE assignment of a Toloker in a pool
	users        map[string]UserState
	restrictions map[uint64]*restriction
	skills       map[uint64]*userSkill
	skillDefs    map[uint64]*skill
	qcHistory    map[qcKey][]submitStat
	skillIndex   map[skillKey]*userSkill
	ledger       []*LedgerEntry
	retries      map[retryKey]*LedgerEntry
}

func newState() *state {
	return &state{
		projects:     map[uint64]*project{},
		pools:        map[uint64]*pool{},
		ops:          map[string]*operation{},
		assignments:  map[string]*assignment{},
		active:       map[poolUser]*assignment{},
		users:        map[string]UserState{},
		restrictions: map[uint64]*restriction{},
		skills:       map[uint64]*userSkill{},
		skillDefs:    map[uint64]*skill{},
		qcHistory:    map[qcKey][]submitStat{},
		skillIndex:   map[skillKey]*userSkill{},
		retries:      map[retryKey]*LedgerEntry{},
	}
}

// New returns a Server configured by cfg. It panics if cfg.Faults is
// invalid (use SetFaults to get the error instead).
func New(cfg Config) *Server {
	s := &Server{
		cfg:     cfg,
		now:     cfg.Now,
		logger:  cfg.Logger,
		limiter: newRateLimiter(cfg.RateLimits),
		done:    make(chan struct{}),
		state:   newState(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	size := cfg.RequestLogSize
	if size == 0 {
		size = DefaultRequestLogSize
	}
	s.reqlog = newRequestLog(size)
	if s.cfg.MaxBodyBytes <= 0 {
		s.cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	keys := make(map[string]string, len(cfg.APIKeys))
	for k, a := range cfg.APIKeys {
		keys[k] = a
	}
	s.keys.Store(&keys)
	if err := s.faults.set(cfg.Faults); err != nil {
		panic("tolokasim: invalid Config.Faults: " + err.Error())
	}
	s.routes()
	return s
}

// NewTestServer starts a Server on an httptest.Server for tests. Close the
// httptest.Server when done; if a timeout fault may still hang a request,
// call (*Server).Close first.
func NewTestServer(cfg Config) (*Server, *httptest.Server) {
	s := New(cfg)
	return s, httptest.NewServer(s)
}

// Run listens on cfg.Addr and serves the emulator until ctx is done, then
// shuts down gracefully. It logs the listening address (attribute "addr").
func Run(ctx context.Context, cfg Config) error {
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if err := cfg.Faults.Validate(); err != nil {
		return fmt.Errorf("tolokasim: faults: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("tolokasim: listen %s: %w", addr, err)
	}
	return New(cfg).Serve(ctx, ln)
}

// Serve serves the emulator on ln until ctx is done, then releases hanging
// requests and shuts the HTTP server down gracefully. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.logger.Info("tolokasim listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("tolokasim: serve: %w", err)
	case <-ctx.Done():
	}
	s.logger.Info("tolokasim shutting down")
	s.Close()
	timeout := s.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("tolokasim: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("tolokasim: serve: %w", err)
	}
	return nil
}

// Close releases requests hung by a timeout fault and makes later ones
// fail fast. The handler keeps serving other requests. Idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// clock returns the current time in UTC at millisecond precision.
func (s *Server) clock() time.Time { return msTruncate(s.now()) }

// AddAPIKey lets key (as ApiKey or OAuth token) authenticate as account.
func (s *Server) AddAPIKey(key, account string) error {
	if key == "" || account == "" {
		return errors.New("tolokasim: API key and account must not be empty")
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	old := *s.keys.Load()
	keys := make(map[string]string, len(old)+1)
	for k, a := range old {
		keys[k] = a
	}
	keys[key] = account
	s.keys.Store(&keys)
	return nil
}

// Reset clears all state: projects, pools, operations, assignments, the
// ledger, restrictions, skills, Toloker states, recorded requests,
// rate-limit windows and faults. API keys stay, and ids keep increasing.
func (s *Server) Reset() {
	s.mu.Lock()
	s.state = newState()
	s.mu.Unlock()
	s.reqlog.clear()
	s.limiter.reset()
	_ = s.faults.set(Faults{})
}

// routes registers the API and admin handlers.
func (s *Server) routes() {
	m := http.NewServeMux()
	api := func(pattern string, o routeOpts, h apiHandler) {
		m.Handle(pattern, s.api(o, h))
	}
	body := routeOpts{body: true}
	none := routeOpts{}

	api("POST /api/v1/projects", routeOpts{body: true, limit: limitCreateProject}, s.createProject)
	api("GET /api/v1/projects", none, s.listProjects)
	api("GET /api/v1/projects/{id}", none, s.getProject)
	api("PUT /api/v1/projects/{id}", body, s.editProject)
	api("POST /api/v1/projects/{id}/archive", none, s.archiveProject)

	api("POST /api/v1/pools", routeOpts{body: true, limit: limitCreatePool}, s.createPool)
	api("GET /api/v1/pools", none, s.listPools)
	api("GET /api/v1/pools/{id}", none, s.getPool)
	api("PUT /api/v1/pools/{id}", body, s.editPool)
	api("PATCH /api/v1/pools/{id}", body, s.patchPool)
	api("POST /api/v1/pools/{id}/open", none, s.poolAction(opPoolOpen))
	api("POST /api/v1/pools/{id}/close", none, s.poolAction(opPoolClose))
	api("POST /api/v1/pools/{id}/archive", none, s.poolAction(opPoolArchive))
	api("POST /api/v1/pools/{id}/close-for-update", none, s.objectAction(opPoolClose, "FOR_UPDATE", s.ownPoolLocked))

	api("POST /api/v1/trainings", routeOpts{body: true, limit: limitCreatePool}, s.createTraining)
	api("GET /api/v1/trainings", none, s.listTrainings)
	api("GET /api/v1/trainings/{id}", none, s.getTraining)
	api("PUT /api/v1/trainings/{id}", body, s.editTraining)
	api("POST /api/v1/trainings/{id}/open", none, s.objectAction(opTrainingOpen, "", s.ownTrainingLocked))
	api("POST /api/v1/trainings/{id}/close", none, s.objectAction(opTrainingClose, "", s.ownTrainingLocked))
	api("POST /api/v1/trainings/{id}/archive", none, s.objectAction(opTrainingArchive, "", s.ownTrainingLocked))
	api("POST /api/v1/trainings/{id}/close-for-update", none, s.objectAction(opTrainingClose, "FOR_UPDATE", s.ownTrainingLocked))

	api("GET /api/v1/operations/{id}", none, s.getOperation)

	api("GET /api/v1/assignments", none, s.listAssignments)
	api("GET /api/v1/assignments/{id}", none, s.getAssignment)
	api("PATCH /api/v1/assignments/{id}", body, s.patchAssignment)

	api("POST /api/v1/tasks/external/submit", body, s.externalSubmit)

	api("PUT /api/v1/user-restrictions", body, s.putRestriction)
	api("GET /api/v1/user-restrictions", none, s.listRestrictions)
	api("GET /api/v1/user-restrictions/{id}", none, s.getRestriction)
	api("DELETE /api/v1/user-restrictions/{id}", none, s.deleteRestriction)
	api("PUT /api/v1/user-skills", routeOpts{body: true, limit: limitUserSkills}, s.putUserSkill)
	api("GET /api/v1/user-skills", none, s.listUserSkills)
	api("GET /api/v1/user-skills/{id}", none, s.getUserSkill)
	api("DELETE /api/v1/user-skills/{id}", none, s.deleteUserSkill)
	api("POST /api/v1/skills", body, s.createSkill)
	api("GET /api/v1/skills", none, s.listSkills)
	api("GET /api/v1/skills/{id}", none, s.getSkill)

	api("/api/v1/", none, func(c *apiCall) response {
		return s.errResp(&Error{Status: http.StatusNotFound, Code: CodeDoesNotExist,
			Message: fmt.Sprintf("no API method %s %s", c.r.Method, c.r.URL.Path)})
	})

	s.adminRoutes(m)
	s.mux = m
}

// routeOpts describes what the API middleware enforces for a route.
type routeOpts struct {
	body  bool      // a JSON body is required: Content-Type must be JSON
	limit limitKind // per-operation quota
}

// apiCall is one authenticated API request as handlers see it.
type apiCall struct {
	r       *http.Request
	account string
	body    []byte
	now     time.Time
}

// response is what a handler answers; the middleware writes it.
type response struct {
	status      int
	body        []byte
	contentType string // application/json when empty and body is set
	retryAfter  int    // seconds; 0 = no Retry-After header
}

type apiHandler func(c *apiCall) response

var jsonContentType = []string{"application/json"}

func jsonResp(status int, body []byte) response { return response{status: status, body: body} }

func (s *Server) errResp(e *Error) response {
	return response{status: e.Status, body: errorJSON(e, s.newRequestID())}
}

func (s *Server) newRequestID() string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", s.reqSeq.Add(1))
}

// api wraps an API handler with the request pipeline: body limit, fault
// injection, authentication, per-second rate limit, Content-Type check,
// per-operation quota, then the handler; and records the request.
func (s *Server) api(o routeOpts, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		now := s.clock()
		rec := RequestRecord{
			Method:      r.Method,
			Path:        r.URL.Path,
			Query:       r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"),
			Received:    now,
		}
		// record logs the request once. Paths that drop the connection call
		// it first, so the record exists before the client sees the drop.
		recorded := false
		record := func() {
			if recorded {
				return
			}
			recorded = true
			s.reqlog.add(rec)
			if s.logger.Enabled(r.Context(), slog.LevelDebug) {
				s.logger.Debug("api request", "method", rec.Method, "path", rec.Path, "status", rec.Status,
					"account", rec.Account, "fault", rec.Fault, "duration", time.Since(start))
			}
		}
		defer record()
		// respond records, then writes: a client that reads the request log
		// after getting its answer always finds the request there.
		respond := func(resp response) {
			rec.Status = resp.status
			record()
			s.write(w, resp)
		}

		body, err := readBody(w, r, s.cfg.MaxBodyBytes)
		rec.Body = recordBody(body)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				respond(s.errResp(&Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
					Message: fmt.Sprintf("request body is larger than %d bytes", s.cfg.MaxBodyBytes)}))
				return
			}
			respond(s.errResp(errBadRequest("cannot read request body: %v", err)))
			return
		}

		d := s.faults.decide(r.URL.Path)
		if d.latency > 0 && !s.wait(r.Context(), d.latency) {
			rec.Fault = "latency"
			return // client went away or server closed
		}
		switch d.kind {
		case faultError:
			rec.Fault = d.kind.String()
			ct, b := injectedError(d.status, s.newRequestID())
			respond(response{status: d.status, body: b, contentType: ct, retryAfter: retryAfterFor(d)})
			return
		case faultThrottle:
			rec.Fault = d.kind.String()
			respond(s.tooMany(d.interval, d.retryAfter, "injected fault: too many requests"))
			return
		case faultDrop:
			rec.Fault = d.kind.String()
			record()
			dropConnection(w)
			return
		case faultTimeout:
			rec.Fault = d.kind.String()
			if d.hang > 0 {
				s.wait(r.Context(), d.hang)
			} else {
				s.wait(r.Context(), -1)
			}
			record()
			dropConnection(w)
			return
		}

		c := &apiCall{r: r, body: body, now: now}
		resp := s.serveAPI(c, o, h)
		rec.Account = c.account
		if d.kind == faultLost {
			rec.Fault = d.kind.String()
			rec.Status = 0
			record()
			dropConnection(w)
			return
		}
		respond(resp)
	})
}

func retryAfterFor(d faultDecision) int {
	if d.status == http.StatusTooManyRequests {
		return d.retryAfter
	}
	return 0
}

// serveAPI runs the checks that need the request and then the handler.
func (s *Server) serveAPI(c *apiCall, o routeOpts, h apiHandler) response {
	account, aerr := s.authenticate(c.r)
	if aerr != nil {
		return s.errResp(aerr)
	}
	c.account = account
	if !s.limiter.allowRequest(account, c.now) {
		return s.tooManyNoInterval()
	}
	if o.body || len(c.body) > 0 {
		switch c.r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			if !isJSONContentType(c.r.Header.Get("Content-Type")) {
				return s.errResp(&Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
					Message: "Content-Type must be application/json"})
			}
		}
	}
	if o.limit != limitNone {
		if ok, interval, retry := s.limiter.allowCreate(account, o.limit, c.now); !ok {
			return s.tooMany(interval, retry, "rate limit exceeded for this method")
		}
	}
	return h(c)
}

// authenticate resolves the Authorization header to an account.
func (s *Server) authenticate(r *http.Request) (string, *Error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", &Error{Status: http.StatusUnauthorized, Code: CodeAuthentication, Message: "Authorization header is missing"}
	}
	scheme, cred, ok := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	if !ok || cred == "" || (!strings.EqualFold(scheme, "ApiKey") && !strings.EqualFold(scheme, "OAuth")) {
		return "", &Error{Status: http.StatusUnauthorized, Code: CodeAuthentication,
			Message: "Authorization header must be \"ApiKey <key>\" or \"OAuth <token>\""}
	}
	account, ok := (*s.keys.Load())[cred]
	if !ok {
		return "", &Error{Status: http.StatusUnauthorized, Code: CodeAuthentication, Message: "unknown API key or OAuth token"}
	}
	return account, nil
}

func (s *Server) tooMany(interval string, retryAfter int, msg string) response {
	resp := s.errResp(&Error{Status: http.StatusTooManyRequests, Code: CodeTooManyRequests, Message: msg,
		Payload: map[string]string{"interval": interval}})
	resp.retryAfter = retryAfter
	return resp
}

// tooManyNoInterval answers the per-second limit: Toloka documents the
// 300 requests/s limit but no interval value for it, so payload is null.
func (s *Server) tooManyNoInterval() response {
	resp := s.errResp(&Error{Status: http.StatusTooManyRequests, Code: CodeTooManyRequests,
		Message: "more than the allowed requests per second"})
	resp.retryAfter = 1
	return resp
}

// write sends resp.
func (s *Server) write(w http.ResponseWriter, resp response) {
	h := w.Header()
	if resp.body != nil {
		if resp.contentType != "" {
			h.Set("Content-Type", resp.contentType)
		} else {
			h["Content-Type"] = jsonContentType
		}
	}
	if resp.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(resp.retryAfter))
	}
	w.WriteHeader(resp.status)
	if resp.body != nil {
		_, _ = w.Write(resp.body)
	}
}

// wait blocks for d (forever when d < 0) or until the request's context is
// done or the server closes. It reports whether d fully elapsed.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

// dropConnection closes the client connection without sending a response.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 or a wrapped writer: aborting the handler resets the stream.
	panic(http.ErrAbortHandler)
}

// readBody reads the whole body, bounded by limit.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

func isJSONContentType(v string) bool {
	if v == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && strings.EqualFold(mt, "application/json")
}

// Locking helpers. Time-driven changes (operations completing, open pools
// reaching will_expire) are applied lazily, under the write lock, by the
// first request that observes them due.

// rlock takes the read lock with every due change applied.
func (s *Server) rlock(now time.Time) {
	s.mu.RLock()
	if s.state.dueAt(now) {
		s.mu.RUnlock()
		s.mu.Lock()
		s.settleLocked(now)
		s.mu.Unlock()
		s.mu.RLock()
	}
}

// lock takes the write lock with every due change applied.
func (s *Server) lock(now time.Time) {
	s.mu.Lock()
	s.settleLocked(now)
}

func (st *state) dueAt(now time.Time) bool {
	return !st.nextDue.IsZero() && !now.Before(st.nextDue)
}

// newID returns the next numeric id (shared by projects, pools,
// restrictions and skills, so an id names one object only).
func (s *Server) newID() uint64 { return s.idSeq.Add(1) }

func formatID(id uint64) string { return strconv.FormatUint(id, 10) }

// parseID reads a numeric path id; anything else names nothing.
func parseID(s string) (uint64, bool) {
	id, err := strconv.ParseUint(s, 10, 64)
	return id, err == nil && id > 0
}

// owner is the "owner" object of projects, pools and assignments. Only the
// owning account can see an object, so myself is always true. Accounts are
// single-person companies: company_id is the account.
type owner struct {
	ID        string `json:"id"`
	Myself    bool   `json:"myself"`
	CompanyID string `json:"company_id"`
}

func ownerOf(account string) owner { return owner{ID: account, Myself: true, CompanyID: account} }
