package project_test

import (
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

// Project.platform_audience "defaults to the origin of platform_url". A
// requester who never set it and moves the platform to another host expects
// the platform's tokens to carry the new origin, not the old one.
func TestADefaultAudienceFollowsAMovedPlatformURL(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	p := gatewaytest.MinimalProject(env.MustCredential(ctx, key))
	p.PlatformUrl = "https://old.example.com/start"
	prj := env.MustProject(ctx, p)
	if prj.GetPlatformAudience() != "https://old.example.com" {
		t.Fatalf("created audience = %q", prj.GetPlatformAudience())
	}
	upd, err := env.Projects.UpdateProject(ctx, &crowdgatev1.UpdateProjectRequest{
		Project:    &crowdgatev1.Project{ProjectId: prj.GetProjectId(), PlatformUrl: "https://new.example.org/start"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"platform_url"}},
	})
	if err != nil {
		t.Fatalf("UpdateProject: %v", err)
	}
	if got := upd.GetProject().GetPlatformAudience(); got != "https://new.example.org" {
		t.Errorf("after moving platform_url to https://new.example.org/start, the defaulted platform_audience = %q, want the new origin https://new.example.org", got)
	}
}

// TestAnAudienceSetInTheMaskIsKeptWhenTheURLMoves: the requester moves
// platform_url and, in the same mask, sets platform_audience explicitly to
// the old origin (the platform still checks tokens for it). The explicit
// value is kept; the first version of the follow-the-URL rule overwrote it
// with the new origin.
func TestAnAudienceSetInTheMaskIsKeptWhenTheURLMoves(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	p := gatewaytest.MinimalProject(env.MustCredential(ctx, key))
	p.PlatformUrl = "https://old.example.com/start"
	prj := env.MustProject(ctx, p)
	upd, err := env.Projects.UpdateProject(ctx, &crowdgatev1.UpdateProjectRequest{
		Project:    &crowdgatev1.Project{ProjectId: prj.GetProjectId(), PlatformUrl: "https://new.example.org/start", PlatformAudience: "https://old.example.com"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"platform_url", "platform_audience"}},
	})
	if err != nil {
		t.Fatalf("UpdateProject: %v", err)
	}
	if got := upd.GetProject().GetPlatformAudience(); got != "https://old.example.com" {
		t.Errorf("platform_audience set explicitly to https://old.example.com (in the mask) came back %q", got)
	}
}
