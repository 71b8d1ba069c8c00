package skill_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

func start(t *testing.T) (*gatewaytest.Env, crowdgatev1.SkillServiceClient) {
	t.Helper()
	env := gatewaytest.Start(t, gatewaytest.Options{Clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))})
	return env, crowdgatev1.NewSkillServiceClient(env.Conn)
}

// TestSkillsAndTolokersValues creates a skill, reads and lists it, sets a
// Toloker's value with a reason (the body Toloka receives, field by
// field), replaces it, lists it by Toloker and by skill and removes it.
func TestSkillsAndTolokersValues(t *testing.T) {
	env, skills := start(t)
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	cred := env.MustCredential(ctx, key)

	created, err := skills.CreateSkill(ctx, &crowdgatev1.CreateSkillRequest{Skill: &crowdgatev1.Skill{
		CredentialId: cred, Name: "Golden rate", PrivateComment: "from control tasks", Hidden: proto.Bool(false),
		SkillTtlHours: proto.Int32(720), PublicName: map[string]string{"en": "Accuracy"},
	}})
	if err != nil {
		t.Fatalf("CreateSkill: %v", err)
	}
	sk := created.GetSkill()
	if sk.GetSkillId() == "" || sk.GetCreateTime() == nil {
		t.Fatalf("created skill %v, want Toloka's id and time", sk)
	}
	posts := env.Requests(http.MethodPost, "/api/v1/skills")
	if len(posts) != 1 {
		t.Fatalf("%d POST /skills, want 1", len(posts))
	}
	want := gatewaytest.DecodeJSON(t, []byte(`{"name": "Golden rate", "private_comment": "from control tasks", "hidden": false, "skill_ttl_hours": 720, "public_name": {"EN": "Accuracy"}}`))
	if diff := cmp.Diff(want, gatewaytest.DecodeJSON(t, posts[0].Body)); diff != "" {
		t.Errorf("skill sent to Toloka (-want +got):\n%s", diff)
	}
	got, err := skills.GetSkill(ctx, &crowdgatev1.GetSkillRequest{CredentialId: cred, SkillId: sk.GetSkillId()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sk, got.GetSkill(), protocmp.Transform()); diff != "" {
		t.Errorf("GetSkill (-created +got):\n%s", diff)
	}
	// Three more, listed two a page, oldest first.
	for _, n := range []string{"b", "c", "d"} {
		if _, err := skills.CreateSkill(ctx, &crowdgatev1.CreateSkillRequest{Skill: &crowdgatev1.Skill{CredentialId: cred, Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	token := ""
	for range 5 {
		page, err := skills.ListSkills(ctx, &crowdgatev1.ListSkillsRequest{CredentialId: cred, PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.GetSkills() {
			names = append(names, s.GetName())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if diff := cmp.Diff([]string{"Golden rate", "b", "c", "d"}, names); diff != "" {
		t.Errorf("listed skills (-want +got):\n%s", diff)
	}

	set, err := skills.SetUserSkill(ctx, &crowdgatev1.SetUserSkillRequest{CredentialId: cred, SkillId: sk.GetSkillId(), UserId: "toloker-1", Value: "75.5", Reason: "control tasks"})
	if err != nil {
		t.Fatalf("SetUserSkill: %v", err)
	}
	if us := set.GetUserSkill(); us.GetValue() != "75.5" || us.GetUserId() != "toloker-1" || us.GetSkillId() != sk.GetSkillId() || us.GetUserSkillId() == "" {
		t.Errorf("set %v", us)
	}
	puts := env.Requests(http.MethodPut, "/api/v1/user-skills")
	want = gatewaytest.DecodeJSON(t, []byte(`{"skill_id": "`+sk.GetSkillId()+`", "user_id": "toloker-1", "value": 75.5, "reason": "control tasks"}`))
	if len(puts) != 1 {
		t.Fatalf("%d PUT /user-skills, want 1", len(puts))
	}
	if diff := cmp.Diff(want, gatewaytest.DecodeJSON(t, puts[0].Body)); diff != "" {
		t.Errorf("user skill sent to Toloka (-want +got):\n%s", diff)
	}
	again, err := skills.SetUserSkill(ctx, &crowdgatev1.SetUserSkillRequest{CredentialId: cred, SkillId: sk.GetSkillId(), UserId: "toloker-1", Value: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetUserSkill().GetUserSkillId() != set.GetUserSkill().GetUserSkillId() || again.GetUserSkill().GetValue() != "0" {
		t.Errorf("setting again gave %v, want the same value id with 0", again.GetUserSkill())
	}
	if _, err := skills.SetUserSkill(ctx, &crowdgatev1.SetUserSkillRequest{CredentialId: cred, SkillId: sk.GetSkillId(), UserId: "toloker-2", Value: "100"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  *crowdgatev1.ListUserSkillsRequest
		want []string
	}{
		{&crowdgatev1.ListUserSkillsRequest{CredentialId: cred, UserId: "toloker-1"}, []string{"toloker-1"}},
		{&crowdgatev1.ListUserSkillsRequest{CredentialId: cred, SkillId: sk.GetSkillId()}, []string{"toloker-1", "toloker-2"}},
	} {
		list, err := skills.ListUserSkills(ctx, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		var users []string
		for _, us := range list.GetUserSkills() {
			users = append(users, us.GetUserId())
		}
		if diff := cmp.Diff(tc.want, users); diff != "" {
			t.Errorf("ListUserSkills(%v) (-want +got):\n%s", tc.req, diff)
		}
	}
	if _, err := skills.DeleteUserSkill(ctx, &crowdgatev1.DeleteUserSkillRequest{CredentialId: cred, UserSkillId: set.GetUserSkill().GetUserSkillId()}); err != nil {
		t.Fatalf("DeleteUserSkill: %v", err)
	}
	list, err := skills.ListUserSkills(ctx, &crowdgatev1.ListUserSkillsRequest{CredentialId: cred, UserId: "toloker-1"})
	if err != nil || len(list.GetUserSkills()) != 0 {
		t.Errorf("after delete: %v %v, want none", list, err)
	}
	_, err = skills.DeleteUserSkill(ctx, &crowdgatev1.DeleteUserSkillRequest{CredentialId: cred, UserSkillId: set.GetUserSkill().GetUserSkillId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
}

// TestSkillsOverREST uses the REST routes with proto field names.
func TestSkillsOverREST(t *testing.T) {
	env, _ := start(t)
	cred := env.MustCredential(env.Ctx(), env.NewAPIKey("acme"))
	code, created := env.REST(http.MethodPost, "/v1/credentials/"+cred+"/skills", `{"name": "rate", "skill_ttl_hours": 24}`)
	if code != http.StatusOK {
		t.Fatalf("POST skills = %d %v", code, created)
	}
	id := created["skill"].(map[string]any)["skill_id"].(string)
	if code, got := env.REST(http.MethodGet, "/v1/credentials/"+cred+"/skills/"+id, ""); code != http.StatusOK || got["skill"].(map[string]any)["name"] != "rate" {
		t.Errorf("GET skill = %d %v", code, got)
	}
	code, set := env.REST(http.MethodPost, "/v1/credentials/"+cred+"/user-skills", `{"skill_id": "`+id+`", "user_id": "u1", "value": "80", "reason": "manual"}`)
	if code != http.StatusOK || set["user_skill"].(map[string]any)["value"] != "80" {
		t.Fatalf("POST user-skills = %d %v", code, set)
	}
	if code, got := env.REST(http.MethodGet, "/v1/credentials/"+cred+"/user-skills?user_id=u1", ""); code != http.StatusOK || len(got["user_skills"].([]any)) != 1 {
		t.Errorf("GET user-skills = %d %v", code, got)
	}
	usID := set["user_skill"].(map[string]any)["user_skill_id"].(string)
	if code, got := env.REST(http.MethodDelete, "/v1/credentials/"+cred+"/user-skills/"+usID, ""); code != http.StatusOK {
		t.Errorf("DELETE user-skill = %d %v", code, got)
	}
}

// TestSkillRequestsAreValidatedBeforeToloka names the bad field, and a
// credential of another tenant or none is NOT_FOUND.
func TestSkillRequestsAreValidatedBeforeToloka(t *testing.T) {
	env, skills := start(t)
	ctx := env.Ctx()
	cred := env.MustCredential(ctx, env.NewAPIKey("acme"))
	long := make([]byte, 151)
	for i := range long {
		long[i] = 'a'
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"no skill", func() error { _, err := skills.CreateSkill(ctx, &crowdgatev1.CreateSkillRequest{}); return err }, "skill"},
		{"no name", func() error {
			_, err := skills.CreateSkill(ctx, &crowdgatev1.CreateSkillRequest{Skill: &crowdgatev1.Skill{CredentialId: cred}})
			return err
		}, "skill.name"},
		{"long name", func() error {
			_, err := skills.CreateSkill(ctx, &crowdgatev1.CreateSkillRequest{Skill: &crowdgatev1.Skill{CredentialId: cred, Name: string(long)}})
			return err
		}, "skill.name"},
		{"ttl 0", func() error {
			_, err := skills.CreateSkill(ctx, &crowdgatev1.CreateSkillRequest{Skill: &crowdgatev1.Skill{CredentialId: cred, Name: "n", SkillTtlHours: proto.Int32(0)}})
			return err
		}, "skill.skill_ttl_hours"},
		{"no credential", func() error {
			_, err := skills.CreateSkill(ctx, &crowdgatev1.CreateSkillRequest{Skill: &crowdgatev1.Skill{Name: "n"}})
			return err
		}, "skill.credential_id"},
		{"value above 100", func() error {
			_, err := skills.SetUserSkill(ctx, &crowdgatev1.SetUserSkillRequest{CredentialId: cred, SkillId: "1", UserId: "u", Value: "100.5"})
			return err
		}, "value"},
		{"negative value", func() error {
			_, err := skills.SetUserSkill(ctx, &crowdgatev1.SetUserSkillRequest{CredentialId: cred, SkillId: "1", UserId: "u", Value: "-1"})
			return err
		}, "value"},
		{"value not a number", func() error {
			_, err := skills.SetUserSkill(ctx, &crowdgatev1.SetUserSkillRequest{CredentialId: cred, SkillId: "1", UserId: "u", Value: "high"})
			return err
		}, "value"},
		{"no value", func() error {
			_, err := skills.SetUserSkill(ctx, &crowdgatev1.SetUserSkillRequest{CredentialId: cred, SkillId: "1", UserId: "u"})
			return err
		}, "value"},
		{"no user", func() error {
			_, err := skills.SetUserSkill(ctx, &crowdgatev1.SetUserSkillRequest{CredentialId: cred, SkillId: "1", Value: "1"})
			return err
		}, "user_id"},
		{"no skill id", func() error {
			_, err := skills.GetSkill(ctx, &crowdgatev1.GetSkillRequest{CredentialId: cred})
			return err
		}, "skill_id"},
		{"bad page token", func() error {
			_, err := skills.ListSkills(ctx, &crowdgatev1.ListSkillsRequest{CredentialId: cred, PageToken: "x"})
			return err
		}, "page_token"},
	} {
		t.Run(tc.name, func(t *testing.T) { gatewaytest.WantField(t, tc.call(), tc.field) })
	}
	if n := len(env.Requests(http.MethodPost, "/api/v1/skills")) + len(env.Requests(http.MethodPut, "/api/v1/user-skills")); n != 0 {
		t.Errorf("%d requests reached Toloka, want none", n)
	}
	_, err := skills.ListSkills(gatewaytest.As("other"), &crowdgatev1.ListSkillsRequest{CredentialId: cred})
	gatewaytest.WantCode(t, err, codes.NotFound)
}
