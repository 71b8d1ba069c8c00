package crowdload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// EmulatorFaults is the fault configuration of the emulator's
// POST /_admin/faults: services/tolokasim's Faults field for field (see
// its documentation; the emulator refuses unknown fields). Rates are
// probabilities per API request.
type EmulatorFaults struct {
	PathPrefix        string          `json:"path_prefix"`
	ErrorRates        map[int]float64 `json:"error_rates,omitempty"`
	LatencyMS         int             `json:"latency_ms"`
	TimeoutRate       float64         `json:"timeout_rate"`
	HangMS            int             `json:"hang_ms"`
	ThrottleRate      float64         `json:"throttle_rate"`
	ThrottleNext      int             `json:"throttle_next"`
	RetryAfterSeconds int             `json:"retry_after_seconds"`
	ThrottleInterval  string          `json:"throttle_interval,omitempty"`
	DropRate          float64         `json:"drop_rate"`
	LostResponseRate  float64         `json:"lost_response_rate"`
	FailNext          int             `json:"fail_next"`
	Seed              uint64          `json:"seed"`
}

// Rate is the total probability that a request is faulted.
func (f EmulatorFaults) Rate() float64 {
	r := f.TimeoutRate + f.ThrottleRate + f.DropRate + f.LostResponseRate
	for _, v := range f.ErrorRates {
		r += v
	}
	return r
}

// emulator talks to the Toloka emulator's admin API (/_admin/), which needs
// no credentials and is never faulted.
type emulator struct {
	base string // without a trailing slash
	hc   *http.Client
}

func newEmulator(base string, hc *http.Client) *emulator {
	return &emulator{base: strings.TrimRight(base, "/"), hc: hc}
}

// apiURL is the Toloka API base the gateways must use.
func (e *emulator) apiURL() string { return e.base + "/api/v1" }

func (e *emulator) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return fmt.Errorf("emulator %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("emulator %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("emulator %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("emulator %s %s: %w", method, path, err)
	}
	return nil
}

// healthy reports whether the admin API answers.
func (e *emulator) healthy(ctx context.Context) error {
	return e.do(ctx, http.MethodGet, "/_admin/healthz", nil, nil)
}

// addAPIKey makes the emulator accept key for account.
func (e *emulator) addAPIKey(ctx context.Context, key, account string) error {
	return e.do(ctx, http.MethodPost, "/_admin/api-keys", map[string]string{"key": key, "account": account}, nil)
}

// createAssignment starts an ACTIVE assignment for userID in the Toloka
// pool, as if the Toloker clicked Start, and returns its id.
func (e *emulator) createAssignment(ctx context.Context, tolokaPoolID, userID string) (string, error) {
	var a struct {
		ID string `json:"id"`
	}
	if err := e.do(ctx, http.MethodPost, "/_admin/assignments", map[string]string{"pool_id": tolokaPoolID, "user_id": userID}, &a); err != nil {
		return "", err
	}
	if a.ID == "" {
		return "", fmt.Errorf("emulator created an assignment without an id")
	}
	return a.ID, nil
}

// ledger returns the submits recorded for a Toloka pool.
func (e *emulator) ledger(ctx context.Context, tolokaPoolID string) (Ledger, error) {
	var l Ledger
	err := e.do(ctx, http.MethodGet, "/_admin/ledger?pool_id="+url.QueryEscape(tolokaPoolID), nil, &l)
	return l, err
}

// setFaults replaces the fault configuration.
func (e *emulator) setFaults(ctx context.Context, f EmulatorFaults) error {
	return e.do(ctx, http.MethodPost, "/_admin/faults", f, nil)
}

// clearFaults turns fault injection off.
func (e *emulator) clearFaults(ctx context.Context) error {
	return e.do(ctx, http.MethodDelete, "/_admin/faults", nil, nil)
}
