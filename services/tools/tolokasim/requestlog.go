package tolokasim

import (
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// RequestRecord is one API request as the emulator received it, for tests
// that assert field by field what a client sent. The Authorization header
// is never recorded; only the account the key resolved to.
type RequestRecord struct {
	// Method is the HTTP method.
	Method string `json:"method"`
	// Path is the URL path.
	Path string `json:"path"`
	// Query is the raw query string.
	Query string `json:"query,omitempty"`
	// Account is the requester account the credentials resolved to
	// (empty when authentication failed or never ran).
	Account string `json:"account,omitempty"`
	// ContentType is the request's Content-Type header.
	ContentType string `json:"content_type,omitempty"`
	// Body is the request body: the JSON as sent, or a JSON string holding
	// the text when it was not valid JSON. Empty for bodiless requests.
	Body json.RawMessage `json:"body,omitempty"`
	// Status is the HTTP status answered (0 when no response was sent).
	Status int `json:"status"`
	// Fault names the injected fault, if any: error, throttle, drop,
	// timeout or lost_response.
	Fault string `json:"fault,omitempty"`
	// Received is when the request arrived, by the server's clock.
	Received time.Time `json:"received"`
}

// requestLog is a bounded ring buffer of RequestRecords.
type requestLog struct {
	mu   sync.Mutex
	buf  []RequestRecord
	next int
	full bool
}

func newRequestLog(size int) *requestLog {
	if size <= 0 {
		return &requestLog{}
	}
	return &requestLog{buf: make([]RequestRecord, size)}
}

func (l *requestLog) add(r RequestRecord) {
	if len(l.buf) == 0 {
		return
	}
	l.mu.Lock()
	l.buf[l.next] = r
	l.next++
	if l.next == len(l.buf) {
		l.next, l.full = 0, true
	}
	l.mu.Unlock()
}

// list returns the records whose path starts with prefix, oldest first.
func (l *requestLog) list(prefix string) []RequestRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []RequestRecord{}
	visit := func(r RequestRecord) {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	if l.full {
		for _, r := range l.buf[l.next:] {
			visit(r)
		}
	}
	for _, r := range l.buf[:l.next] {
		visit(r)
	}
	return out
}

func (l *requestLog) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.buf)
	l.next, l.full = 0, false
}

// recordBody returns body as a JSON value for the log.
func recordBody(body []byte) json.RawMessage {
	if len(body) == 0 {
		return nil
	}
	if json.Valid(body) {
		return json.RawMessage(append([]byte(nil), body...))
	}
	b, _ := json.Marshal(string(body))
	return b
}
