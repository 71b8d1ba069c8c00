package project_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// landingURL is the redirect_url every project gives Toloka: the public URL
// start gives the gateway, plus /start.
const landingURL = "https://crowdgate.example.com/start"

// start serves the gateway in front of the emulator on a fake clock, so
// waiting for Toloka's operations takes no real time, with landingURL as
// its landing URL.
func start(t *testing.T) *gatewaytest.Env {
	t.Helper()
	return gatewaytest.Start(t, gatewaytest.Options{
		Clock:  fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		Config: func(c *gateway.Config) { c.PublicURL = "https://crowdgate.example.com" },
	})
}

// tolokaFaults answers the next n API requests under prefix with 503.
func tolokaFaults(prefix string, n int) tolokasim.Faults {
	return tolokasim.Faults{PathPrefix: prefix, FailNext: n}
}

// TestCreateProjectSendsAnExternalProject checks the project Toloka
// receives field by field (EXTERNAL issuing to the landing URL, the ptmik
// metadata, quality control, localization), what is stored and returned,
// and that another tenant cannot read it.
func TestCreateProjectSendsAnExternalProject(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	credID := env.MustCredential(env.Ctx(), key)
	prj := env.MustProject(env.Ctx(), gatewaytest.FullProject(credID))

	posts := env.Requests(http.MethodPost, "/api/v1/projects")
	if len(posts) != 1 || posts[0].Status != http.StatusCreated || posts[0].Account != "acme" {
		t.Fatalf("POST /projects = %+v, want one, created, as acme", posts)
	}
	want := gatewaytest.DecodeJSON(t, []byte(`{
		"public_name": "Label street signs",
		"public_description": "Draw boxes around street signs on our platform",
		"public_instructions": "<p>Draw a box around <b>every</b> sign & pole.</p>",
		"private_comment": "batch 7",
		"task_spec": {
			"input_spec": {"assignment_id": {"type": "string", "required": false}},
			"output_spec": {"result": {"type": "json", "required": false}}
		},
		"assignments_issuing_type": "EXTERNAL",
		"assignments_issuing_view_config": {"redirect_url": "https://crowdgate.example.com/start"},
		"assignments_automerge_enabled": true,
		"max_active_assignments_count": 3,
		"quality_control": {"configs": [{
			"collector_config": {"type": "SKIPPED_IN_ROW_ASSIGNMENTS"},
			"rules": [{
				"conditions": [{"key": "skipped_in_row_count", "operator": "GTE", "value": 10}],
				"action": {"type": "RESTRICTION_V2", "parameters": {"scope": "PROJECT", "duration_unit": "DAYS", "duration": 10, "private_comment": "Skipped too many"}}
			}]
		}]},
		"localization_config": {
			"default_language": "EN",
			"additional_languages": [{"language": "RU", "public_name": {"value": "Дорожные знаки", "source": "REQUESTER"}}]
		},
		"metadata": {
			"ptmik_partner_name": ["Acme Labeling"],
			"ptmik_partner_url": ["https://label.example.com"],
			"ptmik_bonus_price_min": ["0.50"],
			"ptmik_bonus_price_max": ["2.5"]
		}
	}`))
	if diff := cmp.Diff(want, gatewaytest.DecodeJSON(t, posts[0].Body)); diff != "" {
		t.Errorf("project sent to Toloka (-want +got):\n%s", diff)
	}

	if prj.GetTolokaProjectId() == "" || prj.GetStatus() != crowdgatev1.ProjectStatus_PROJECT_STATUS_ACTIVE ||
		prj.GetEnvironment() != crowdgatev1.Environment_ENVIRONMENT_SANDBOX || prj.GetLandingUrl() != landingURL ||
		prj.GetCreateTime() == nil || prj.GetTenantId() != "default" || !strings.HasPrefix(prj.GetProjectId(), "prj_") {
		t.Errorf("created project = %v", prj)
	}
	if prj.GetPlatformAudience() != "https://label.example.com" {
		t.Errorf("platform_audience = %q, want the origin of platform_url", prj.GetPlatformAudience())
	}
	if diff := cmp.Diff([]string{"RU", "KZ"}, prj.GetTolokerRequirements().GetCountries()); diff != "" {
		t.Errorf("stored countries (-want +got):\n%s", diff)
	}
	got, err := env.Projects.GetProject(env.Ctx(), &crowdgatev1.GetProjectRequest{ProjectId: prj.GetProjectId()})
	if err != nil || !proto.Equal(got.GetProject(), prj) {
		t.Errorf("GetProject = %v, %v; want the created project", got, err)
	}
	_, err = env.Projects.GetProject(gatewaytest.As("globex"), &crowdgatev1.GetProjectRequest{ProjectId: prj.GetProjectId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
}

// TestCreateProjectOverRESTWithATaskSpec creates a project over REST with
// the requester's own task spec, checks the spec and metadata sent, and
// lists projects page by page and by status.
func TestCreateProjectOverRESTWithATaskSpec(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	credID := env.MustCredential(env.Ctx(), key)
	code, body := env.REST(http.MethodPost, "/v1/projects", `{
		"credential_id": "`+credID+`",
		"public_name": "Transcribe audio",
		"public_description": "Listen and type",
		"platform_url": "http://127.0.0.1:9000/work",
		"partner_name": "Sounds Inc",
		"partner_url": "https://sounds.example.org",
		"bonus_price_min": "1",
		"task_spec": {
			"input_spec": {"audio": {"type": "url", "hidden": true}},
			"output_spec": {"text": {"type": "string", "required": true, "min_length": 1, "max_length": 500},
			                "score": {"type": "float", "min_value": 0, "max_value": 1.5, "allowed_values": [0, 0.5, 1.5]}},
			"view_spec": {"markup": "<audio/>", "settings": {"show_skip": false}, "assets": {"script_urls": ["$TOLOKA_ASSETS/js/a.js"]}}
		}
	}`)
	if code != http.StatusOK {
		t.Fatalf("REST CreateProject = %d %v", code, body)
	}
	posts := env.Requests(http.MethodPost, "/api/v1/projects")
	if len(posts) != 1 {
		t.Fatalf("%d POST /projects, want 1", len(posts))
	}
	sent := gatewaytest.DecodeJSON(t, posts[0].Body).(map[string]any)
	want := gatewaytest.DecodeJSON(t, []byte(`{
		"input_spec": {"audio": {"type": "url", "hidden": true}},
		"output_spec": {"text": {"type": "string", "required": true, "min_length": 1, "max_length": 500},
		                "score": {"type": "float", "min_value": 0, "max_value": 1.5, "allowed_values": [0, 0.5, 1.5]}},
		"view_spec": {"markup": "<audio/>", "settings": {"showSkip": false}, "assets": {"script_urls": ["$TOLOKA_ASSETS/js/a.js"]}}
	}`))
	if diff := cmp.Diff(want, sent["task_spec"]); diff != "" {
		t.Errorf("task_spec sent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(gatewaytest.DecodeJSON(t, []byte(`{"ptmik_partner_name": ["Sounds Inc"], "ptmik_partner_url": ["https://sounds.example.org"], "ptmik_bonus_price_min": ["1"]}`)), sent["metadata"]); diff != "" {
		t.Errorf("metadata sent (-want +got):\n%s", diff)
	}
	prj := body["project"].(map[string]any)
	if prj["toloka_project_id"] == "" || prj["status"] != "PROJECT_STATUS_ACTIVE" || prj["landing_url"] != landingURL {
		t.Errorf("REST project = %v", prj)
	}

	// Listing, paged, newest first, filtered by status.
	env.MustProject(env.Ctx(), gatewaytest.MinimalProject(credID))
	code, page := env.REST(http.MethodGet, "/v1/projects?page_size=1", "")
	if code != http.StatusOK || len(page["projects"].([]any)) != 1 || page["next_page_token"] == "" {
		t.Fatalf("first page = %d %v", code, page)
	}
	code, page2 := env.REST(http.MethodGet, "/v1/projects?page_size=1&page_token="+page["next_page_token"].(string), "")
	if code != http.StatusOK || len(page2["projects"].([]any)) != 1 || page2["next_page_token"] != "" {
		t.Fatalf("second page = %d %v", code, page2)
	}
	if page2["projects"].([]any)[0].(map[string]any)["project_id"] != prj["project_id"] {
		t.Errorf("the older project is not on the second page")
	}
	code, archived := env.REST(http.MethodGet, "/v1/projects?status=PROJECT_STATUS_ARCHIVED", "")
	if code != http.StatusOK || len(archived["projects"].([]any)) != 0 {
		t.Errorf("archived projects = %d %v, want none", code, archived)
	}
}

// TestCreateProjectValidation refuses each invalid project with
// INVALID_ARGUMENT naming the field, before Toloka, and a credential of
// another tenant with NOT_FOUND.
func TestCreateProjectValidation(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	credID := env.MustCredential(env.Ctx(), key)
	for _, tc := range []struct {
		name   string
		change func(p *crowdgatev1.Project)
		field  string
	}{
		{"no credential", func(p *crowdgatev1.Project) { p.CredentialId = "" }, "project.credential_id"},
		{"no public name", func(p *crowdgatev1.Project) { p.PublicName = " " }, "project.public_name"},
		{"public name over 150", func(p *crowdgatev1.Project) { p.PublicName = strings.Repeat("я", 151) }, "project.public_name"},
		{"no description", func(p *crowdgatev1.Project) { p.PublicDescription = "" }, "project.public_description"},
		{"description over 2048", func(p *crowdgatev1.Project) { p.PublicDescription = strings.Repeat("d", 2049) }, "project.public_description"},
		{"no platform url", func(p *crowdgatev1.Project) { p.PlatformUrl = "" }, "project.platform_url"},
		{"relative platform url", func(p *crowdgatev1.Project) { p.PlatformUrl = "/start" }, "project.platform_url"},
		{"http platform url", func(p *crowdgatev1.Project) { p.PlatformUrl = "http://label.example.com/start" }, "project.platform_url"},
		{"ftp platform url", func(p *crowdgatev1.Project) { p.PlatformUrl = "ftp://label.example.com/" }, "project.platform_url"},
		{"platform url with user", func(p *crowdgatev1.Project) { p.PlatformUrl = "https://u:p@label.example.com/" }, "project.platform_url"},
		{"http return url", func(p *crowdgatev1.Project) { p.ReturnUrl = "http://example.com/done" }, "project.return_url"},
		{"no partner name", func(p *crowdgatev1.Project) { p.PartnerName = "" }, "project.partner_name"},
		{"no partner url", func(p *crowdgatev1.Project) { p.PartnerUrl = "" }, "project.partner_url"},
		{"bad partner url", func(p *crowdgatev1.Project) { p.PartnerUrl = "label.example.com" }, "project.partner_url"},
		{"bonus min not a decimal", func(p *crowdgatev1.Project) { p.BonusPriceMin = "1e3" }, "project.bonus_price_min"},
		{"bonus min negative", func(p *crowdgatev1.Project) { p.BonusPriceMin = "-1" }, "project.bonus_price_min"},
		{"bonus max below min", func(p *crowdgatev1.Project) { p.BonusPriceMin, p.BonusPriceMax = "2.00", "1.99" }, "project.bonus_price_max"},
		{"bad country", func(p *crowdgatev1.Project) {
			p.TolokerRequirements = &crowdgatev1.TolokerRequirements{Countries: []string{"RU", "Russia"}}
		}, "project.toloker_requirements.countries[1]"},
		{"bad language", func(p *crowdgatev1.Project) {
			p.TolokerRequirements = &crowdgatev1.TolokerRequirements{Languages: []string{"english"}}
		}, "project.toloker_requirements.languages[0]"},
		{"bad client type", func(p *crowdgatev1.Project) {
			p.TolokerRequirements = &crowdgatev1.TolokerRequirements{ClientTypes: []string{"PHONE"}}
		}, "project.toloker_requirements.client_types[0]"},
		{"bad requirement filter", func(p *crowdgatev1.Project) {
			p.TolokerRequirements = &crowdgatev1.TolokerRequirements{Filter: gatewaytest.Or(gatewaytest.Cond("profile", "gender", "LIKE", structpb.NewStringValue("MALE")))}
		}, "project.toloker_requirements.filter.or.filters[0].condition.operator"},
		{"empty input spec", func(p *crowdgatev1.Project) {
			p.TaskSpec = &crowdgatev1.TaskSpec{OutputSpec: map[string]*crowdgatev1.FieldSpec{"r": {Type: "string"}}}
		}, "project.task_spec.input_spec"},
		{"unknown field type", func(p *crowdgatev1.Project) {
			p.TaskSpec = &crowdgatev1.TaskSpec{InputSpec: map[string]*crowdgatev1.FieldSpec{"a": {Type: "blob"}}, OutputSpec: map[string]*crowdgatev1.FieldSpec{"r": {Type: "string"}}}
		}, `project.task_spec.input_spec["a"].type`},
		{"file input", func(p *crowdgatev1.Project) {
			p.TaskSpec = &crowdgatev1.TaskSpec{InputSpec: map[string]*crowdgatev1.FieldSpec{"a": {Type: "file"}}, OutputSpec: map[string]*crowdgatev1.FieldSpec{"r": {Type: "string"}}}
		}, `project.task_spec.input_spec["a"].type`},
		{"bad additional language", func(p *crowdgatev1.Project) {
			p.LocalizationConfig = &crowdgatev1.LocalizationConfig{AdditionalLanguages: []*crowdgatev1.AdditionalLanguage{{Language: ""}}}
		}, "project.localization_config.additional_languages[0].language"},
		{"quality rule without action", func(p *crowdgatev1.Project) {
			p.QualityControl = &crowdgatev1.ProjectQualityControl{Configs: []*crowdgatev1.QualityControlConfig{{
				CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_INCOME},
				Rules:           []*crowdgatev1.QualityControlRule{{Conditions: []*crowdgatev1.RuleCondition{{Key: "income_sum_for_last_24_hours", Operator: crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_GT, Value: structpb.NewNumberValue(20)}}}},
			}}}
		}, "project.quality_control.configs[0].rules[0].action"},
		{"max active assignments 0", func(p *crowdgatev1.Project) { p.MaxActiveAssignmentsCount = proto.Int32(0) }, "project.max_active_assignments_count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := gatewaytest.MinimalProject(credID)
			tc.change(p)
			_, err := env.Projects.CreateProject(env.Ctx(), &crowdgatev1.CreateProjectRequest{Project: p})
			gatewaytest.WantField(t, err, tc.field)
		})
	}
	if posts := env.Requests(http.MethodPost, "/api/v1/projects"); len(posts) != 0 {
		t.Errorf("invalid projects reached Toloka %d times", len(posts))
	}

	// A credential of another tenant is not found.
	_, err := env.Projects.CreateProject(gatewaytest.As("globex"), &crowdgatev1.CreateProjectRequest{Project: gatewaytest.MinimalProject(credID)})
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = env.Projects.CreateProject(env.Ctx(), &crowdgatev1.CreateProjectRequest{})
	gatewaytest.WantField(t, err, "project")
}

// TestTolokaErrorsReachTheCallerWithMeaning maps Toloka's failures to codes
// a caller can act on: UNAVAILABLE (503) when Toloka is down,
// RESOURCE_EXHAUSTED (429) on its daily quota, UNAVAILABLE after retried
// opens; and failed creates leave no trace on the credential.
func TestTolokaErrorsReachTheCallerWithMeaning(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	credID := env.MustCredential(env.Ctx(), key)

	// Toloka down: UNAVAILABLE (503 over REST), never a bare 500.
	if err := env.Sim.SetFaults(tolokaFaults("/api/v1/projects", 100)); err != nil {
		t.Fatal(err)
	}
	_, err := env.Projects.CreateProject(env.Ctx(), &crowdgatev1.CreateProjectRequest{Project: gatewaytest.MinimalProject(credID)})
	gatewaytest.WantCode(t, err, codes.Unavailable)
	code, body := env.REST(http.MethodPost, "/v1/projects", `{"credential_id": "`+credID+`", "public_name": "n", "public_description": "d",
		"platform_url": "https://p.example.com", "partner_name": "p", "partner_url": "https://p.example.com"}`)
	if code != http.StatusServiceUnavailable {
		t.Errorf("REST with Toloka down = %d %v, want 503", code, body)
	}
	env.Sim.ClearFaults()

	// Toloka's daily quota: RESOURCE_EXHAUSTED (429 over REST).
	prj := env.MustProject(env.Ctx(), gatewaytest.MinimalProject(credID))
	if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/pools", ThrottleNext: 2, ThrottleInterval: "DAY"}); err != nil {
		t.Fatal(err)
	}
	_, err = env.Pools.CreatePool(env.Ctx(), &crowdgatev1.CreatePoolRequest{Pool: gatewaytest.ValidPool(prj.GetProjectId(), env.Now())})
	gatewaytest.WantCode(t, err, codes.ResourceExhausted)
	code, body = env.REST(http.MethodPost, "/v1/pools", `{"project_id": "`+prj.GetProjectId()+`", "private_name": "x",
		"will_expire": "2027-01-01T00:00:00Z", "reward_per_assignment": "0.05", "assignment_max_duration_seconds": "300",
		"defaults": {"default_overlap_for_new_task_suites": 1}}`)
	if code != http.StatusTooManyRequests {
		t.Errorf("REST with Toloka's quota used up = %d %v, want 429", code, body)
	}
	env.Sim.ClearFaults()

	// Toloka failing an open on every retry: UNAVAILABLE, the pool stays closed.
	p := env.MustPool(env.Ctx(), gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))
	if err := env.Sim.SetFaults(tolokaFaults("/api/v1/pools/"+p.GetTolokaPoolId()+"/open", 100)); err != nil {
		t.Fatal(err)
	}
	_, err = env.Pools.OpenPool(env.Ctx(), &crowdgatev1.OpenPoolRequest{PoolId: p.GetPoolId()})
	gatewaytest.WantCode(t, err, codes.Unavailable)
	if n := len(env.Requests(http.MethodPost, "/api/v1/pools/"+p.GetTolokaPoolId()+"/open")); n < 2 {
		t.Errorf("an open (idempotent) answered 503 was tried %d times, want retries", n)
	}
	env.Sim.ClearFaults()

	// The credential still holds no project after the failed creates: once
	// the project is archived it can go.
	if _, err := env.Projects.ArchiveProject(env.Ctx(), &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.GetProjectId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Credentials.DeleteCredential(env.Ctx(), &crowdgatev1.DeleteCredentialRequest{CredentialId: credID}); err != nil {
		t.Errorf("DeleteCredential after failed creates: %v", err)
	}
}
