// Package restriction is the one reading of what a Toloka user restriction
// (a ban) covers, shared by the side that makes bans (requester/ban) and
// the side that enforces them (the Toloker registry and the landing).
//
// A restriction has a scope and a target, as Toloka's has: POOL (a pool),
// PROJECT (a project) or ALL_PROJECTS (every project of one Toloka
// account, which Crowdgate knows as a credential). A place a Toloker works
// in, a Target, is a pool with its project and credential; a restriction
// covers it when its scope's part of the target is the same, and it has
// not expired.
//
// Restrictions are kept in Redis in a compact form (Encode, Decode): the
// scope, the three ids and the expiry in Unix milliseconds, separated by
// tabs (no id holds a tab).
package restriction

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// Scope is a restriction's scope, with Toloka's names.
type Scope string

// The scopes Crowdgate makes.
const (
	AllProjects Scope = "ALL_PROJECTS"
	Project     Scope = "PROJECT"
	Pool        Scope = "POOL"
)

// Target is where a Toloker works: a pool, its project and the credential
// (Toloka account) of the project. A restriction's target holds the ids its
// scope needs, and may hold the others for information.
type Target struct {
	CredentialID, ProjectID, PoolID string
}

// Restriction is a ban in force in Crowdgate's view.
type Restriction struct {
	// ID is Crowdgate's ban id.
	ID string
	// Scope is where it applies; Target what it applies to.
	Scope  Scope
	Target Target
	// Expires is when it ends; zero: never.
	Expires time.Time
}

// Active reports whether r is in force at now.
func (r Restriction) Active(now time.Time) bool {
	return r.Expires.IsZero() || now.Before(r.Expires)
}

// Covers reports whether r, in force at now, bars a Toloker from t.
func (r Restriction) Covers(t Target, now time.Time) bool {
	if !r.Active(now) {
		return false
	}
	switch r.Scope {
	case Pool:
		return r.Target.PoolID != "" && r.Target.PoolID == t.PoolID
	case Project:
		return r.Target.ProjectID != "" && r.Target.ProjectID == t.ProjectID
	case AllProjects:
		return r.Target.CredentialID != "" && r.Target.CredentialID == t.CredentialID
	}
	return false
}

// Covering returns the first of rs that covers t at now.
func Covering(rs []Restriction, t Target, now time.Time) (Restriction, bool) {
	for _, r := range rs {
		if r.Covers(t, now) {
			return r, true
		}
	}
	return Restriction{}, false
}

// Encode is r's stored form (without its id, which names it).
func (r Restriction) Encode() string {
	exp := "0"
	if !r.Expires.IsZero() {
		exp = strconv.FormatInt(r.Expires.UnixMilli(), 10)
	}
	return strings.Join([]string{string(r.Scope), r.Target.CredentialID, r.Target.ProjectID, r.Target.PoolID, exp}, "\t")
}

// Decode reads the stored form of restriction id.
func Decode(id, s string) (Restriction, error) {
	parts := strings.Split(s, "\t")
	if len(parts) != 5 {
		return Restriction{}, fmt.Errorf("restriction %s: stored form %q has %d parts, want 5", id, s, len(parts))
	}
	ms, err := strconv.ParseInt(parts[4], 10, 64)
	if err != nil {
		return Restriction{}, fmt.Errorf("restriction %s: expiry %q: %w", id, parts[4], err)
	}
	r := Restriction{ID: id, Scope: Scope(parts[0]), Target: Target{CredentialID: parts[1], ProjectID: parts[2], PoolID: parts[3]}}
	if ms > 0 {
		r.Expires = time.UnixMilli(ms).UTC()
	}
	return r, nil
}

// Name is how a scope reads in a sentence: "pool", "project",
// "all_projects" (session.BannedError's Scope).
func (s Scope) Name() string { return strings.ToLower(string(s)) }

// LiveSession is a Toloker's live session and its pool: what a ban looks
// for to end (the registry lists them).
type LiveSession struct {
	SessionID, PoolID string
	// Expires is when the session expires unless it ends before.
	Expires time.Time
}

// Proto is the API's name of the scope.
func (s Scope) Proto() crowdgatev1.RestrictionScope {
	switch s {
	case Pool:
		return crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL
	case Project:
		return crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_PROJECT
	case AllProjects:
		return crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_ALL_PROJECTS
	}
	return crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_UNSPECIFIED
}

// FromProto is the scope the API names; false for an unknown one.
func FromProto(s crowdgatev1.RestrictionScope) (Scope, bool) {
	switch s {
	case crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL:
		return Pool, true
	case crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_PROJECT:
		return Project, true
	case crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_ALL_PROJECTS:
		return AllProjects, true
	}
	return "", false
}
