package project_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

// TestUpdateProjectChangesWhatTheMaskNames updates a project's texts,
// metadata and limits (the PUT Toloka receives is the created project with
// exactly those changes), over gRPC and REST PATCH, and refuses what may
// not change or is invalid, naming the field, before Toloka.
func TestUpdateProjectChangesWhatTheMaskNames(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	prj := env.MustProject(ctx, gatewaytest.FullProject(env.MustCredential(ctx, key)))
	first := gatewaytest.DecodeJSON(t, env.Requests(http.MethodPost, "/api/v1/projects")[0].Body).(map[string]any)

	upd, err := env.Projects.UpdateProject(ctx, &crowdgatev1.UpdateProjectRequest{
		Project: &crowdgatev1.Project{ProjectId: prj.GetProjectId(), PublicDescription: "Boxes around every sign",
			BonusPriceMax: "3.00", MaxActiveAssignmentsCount: proto.Int32(5), PublicName: "not in the mask"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"public_description", "bonus_price_max", "max_active_assignments_count", "toloka_project_id"}},
	})
	if err != nil {
		t.Fatalf("UpdateProject: %v", err)
	}
	p := upd.GetProject()
	if p.GetPublicDescription() != "Boxes around every sign" || p.GetBonusPriceMax() != "3.00" || p.GetMaxActiveAssignmentsCount() != 5 ||
		p.GetPublicName() != prj.GetPublicName() || p.GetTolokaProjectId() != prj.GetTolokaProjectId() {
		t.Errorf("updated project = %v", p)
	}
	puts := env.Requests(http.MethodPut, "/api/v1/projects/"+prj.GetTolokaProjectId())
	if len(puts) != 1 {
		t.Fatalf("%d PUT /projects, want 1", len(puts))
	}
	want := first
	want["public_description"] = "Boxes around every sign"
	want["max_active_assignments_count"] = gatewaytest.DecodeJSON(t, []byte("5"))
	want["metadata"].(map[string]any)["ptmik_bonus_price_max"] = []any{"3.00"}
	if diff := cmp.Diff(want, gatewaytest.DecodeJSON(t, puts[0].Body)); diff != "" {
		t.Errorf("PUT /projects body (-want +got):\n%s", diff)
	}
	got, err := env.Projects.GetProject(ctx, &crowdgatev1.GetProjectRequest{ProjectId: prj.GetProjectId()})
	if err != nil || !proto.Equal(got.GetProject(), p) {
		t.Errorf("GetProject after update = %v, %v", got, err)
	}

	// REST PATCH: the body's fields are the mask.
	code, body := env.REST(http.MethodPatch, "/v1/projects/"+prj.GetProjectId(), `{"public_instructions": "<p>New</p>"}`)
	if code != http.StatusOK || body["project"].(map[string]any)["public_instructions"] != "<p>New</p>" ||
		body["project"].(map[string]any)["public_description"] != "Boxes around every sign" {
		t.Fatalf("REST PATCH = %d %v", code, body)
	}

	for _, tc := range []struct {
		name  string
		p     *crowdgatev1.Project
		paths []string
		field string
	}{
		{"credential", &crowdgatev1.Project{ProjectId: prj.GetProjectId(), CredentialId: "cred_other"}, []string{"credential_id"}, "project.credential_id"},
		{"empty name", &crowdgatev1.Project{ProjectId: prj.GetProjectId()}, []string{"public_name"}, "project.public_name"},
		{"bonus below min", &crowdgatev1.Project{ProjectId: prj.GetProjectId(), BonusPriceMax: "0.10"}, []string{"bonus_price_max"}, "project.bonus_price_max"},
		{"bad platform url", &crowdgatev1.Project{ProjectId: prj.GetProjectId(), PlatformUrl: "http://label.example.com"}, []string{"platform_url"}, "project.platform_url"},
		{"unknown field", &crowdgatev1.Project{ProjectId: prj.GetProjectId()}, []string{"nope"}, "update_mask"},
		{"no id", &crowdgatev1.Project{}, nil, "project.project_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.Projects.UpdateProject(ctx, &crowdgatev1.UpdateProjectRequest{Project: tc.p, UpdateMask: &fieldmaskpb.FieldMask{Paths: tc.paths}})
			gatewaytest.WantField(t, err, tc.field)
		})
	}
	if n := len(env.Requests(http.MethodPut, "/api/v1/projects/")); n != 2 {
		t.Errorf("%d PUTs reached Toloka, want the 2 valid updates", n)
	}
}
