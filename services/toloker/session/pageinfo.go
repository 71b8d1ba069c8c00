package session

import (
	"context"
	"errors"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// PageInfo is what the landing's pages may tell a Toloker about the task
// behind an assignment id: only what Crowdgate's records say, never
// anything from the request.
type PageInfo struct {
	// PartnerName and PublicName are the project's partner_name and
	// public_name ("" when no project is known).
	PartnerName, PublicName string
	// ReturnURL is where "Back to Toloka" leads: the session's or the
	// project's return_url, else Settings.DefaultReturnURL.
	ReturnURL string
}

// DefaultReturnURL is where a Toloker goes back to when no project is
// known (Settings.DefaultReturnURL).
func (s *Service) DefaultReturnURL() string { return s.settings.DefaultReturnURL }

// errStopSearch ends a catalog search before Toloka is asked.
var errStopSearch = errors.New("session: page info needs no Toloka call")

// PageInfo describes the task of an assignment for the landing's pages:
// through the assignment's session when it has one (its project and its
// return URL), else through the pool of the catalog that the id can belong
// to. It never asks Toloka, so when pools of two projects have the id's
// Toloka pool id (two tenants' pools, or the sandbox's and production's,
// which number their pools separately) it names neither: a page must not
// show one tenant's partner, or send the Toloker back to its return_url,
// for another tenant's assignment. On an error the answer still carries
// the default return URL.
func (s *Service) PageInfo(ctx context.Context, assignmentID string) (PageInfo, error) {
	info := PageInfo{ReturnURL: s.settings.DefaultReturnURL}
	if _, ok := toloka.ParseAssignmentID(assignmentID); !ok {
		return info, catalog.CheckAssignmentID("assignment_id", assignmentID)
	}
	raw, err := s.store.get(ctx, assignmentID)
	switch {
	case err == nil:
		r, err := unmarshalRecord(raw)
		if err != nil {
			return info, err
		}
		if u := r.session.GetReturnUrl(); u != "" {
			info.ReturnURL = u
		}
		prj, err := s.catalog.Project(ctx, r.session.GetTenantId(), r.session.GetProjectId())
		if err != nil {
			return info, err
		}
		info.PartnerName, info.PublicName = prj.GetPartnerName(), prj.GetPublicName()
		return info, nil
	case !errors.Is(err, errNoRecord):
		return info, err
	}
	var prj *crowdgatev1.Project
	ambiguous := false
	_, err = s.catalog.FindAssignment(ctx, assignmentID, "", &catalog.Check{Vet: func(r *catalog.Resolved, _ string) error {
		switch {
		case prj == nil:
			prj = r.Project
		case prj.GetTenantId() != r.Project.GetTenantId() || prj.GetProjectId() != r.Project.GetProjectId():
			ambiguous = true
		}
		return errStopSearch // every pool is refused: Toloka is never asked
	}})
	if prj == nil || ambiguous {
		if err == nil || errors.Is(err, errStopSearch) || catalogNotFound(err) {
			return info, nil
		}
		return info, err
	}
	if u := prj.GetReturnUrl(); u != "" {
		info.ReturnURL = u
	}
	info.PartnerName, info.PublicName = prj.GetPartnerName(), prj.GetPublicName()
	return info, nil
}

// catalogNotFound reports a catalog answer that no pool has the assignment id.
func catalogNotFound(err error) bool {
	var nf *catalog.AssignmentNotFound
	return errors.As(err, &nf)
}
