package toloka

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

func dec(s string) *money.Decimal {
	d := money.MustParse(s)
	return &d
}

// externalProject is a project as Crowdgate creates it (seed 001 + 002).
func externalProject() *Project {
	return &Project{
		PublicName:         "Label street signs",
		PublicDescription:  "Draw boxes around street signs on Acme Label",
		PublicInstructions: "<p>Box every sign.</p>",
		PrivateComment:     "crowdgate project 7",
		TaskSpec: &TaskSpec{
			InputSpec:  map[string]FieldSpec{"job_id": {Type: "string", Required: Ptr(true), Hidden: Ptr(false)}},
			OutputSpec: map[string]FieldSpec{"result": {Type: "string", Required: Ptr(true), MaxLength: Ptr(100)}},
			ViewSpec: &ViewSpec{
				Markup: "<p>{{job_id}}</p>", Script: "exports.Task = function(){}", Styles: "",
				Settings: &ViewSettings{ShowSkip: Ptr(true), ShowTimer: Ptr(false)},
				Assets:   &ViewAssets{ScriptURLs: []string{"$TOLOKA_ASSETS/js/toloka-handlebars-templates.js"}},
			},
		},
		AssignmentsIssuingType:       IssuingExternal,
		AssignmentsIssuingViewConfig: &IssuingViewConfig{RedirectURL: "https://gate.example.com/toloka/start"},
		AssignmentsAutomergeEnabled:  Ptr(false),
		MaxActiveAssignmentsCount:    Ptr(15),
		Metadata: map[string][]string{
			MetaPartnerName:   {"Acme Label"},
			MetaPartnerURL:    {"https://acme.example.com"},
			MetaBonusPriceMin: {"0.50"},
			MetaBonusPriceMax: {"2.00"},
		},
		QualityControl: &QualityControl{Configs: []QualityControlConfig{{
			CollectorConfig: &CollectorConfig{Type: "SKIPPED_IN_ROW_ASSIGNMENTS"},
			Rules: []Rule{{
				Conditions: []Condition{{Key: "skipped_in_row_count", Operator: "GTE", Value: json.RawMessage("10")}},
				Action:     &Action{Type: "REJECT_ALL_ASSIGNMENTS", Parameters: &ActionParameters{PublicComment: "Skipped more than 10 task suites in a row"}},
			}},
		}}},
		LocalizationConfig: &LocalizationConfig{
			DefaultLanguage: "EN",
			AdditionalLanguages: []AdditionalLanguage{{
				Language:   "RU",
				PublicName: &LocalizedValue{Value: "Дорожные знаки", Source: "REQUESTER"},
			}},
		},
	}
}

const externalProjectJSON = `{
  "public_name": "Label street signs",
  "public_description": "Draw boxes around street signs on Acme Label",
  "public_instructions": "<p>Box every sign.</p>",
  "private_comment": "crowdgate project 7",
  "task_spec": {
    "input_spec": {"job_id": {"type": "string", "required": true, "hidden": false}},
    "output_spec": {"result": {"type": "string", "required": true, "max_length": 100}},
    "view_spec": {
      "markup": "<p>{{job_id}}</p>",
      "script": "exports.Task = function(){}",
      "settings": {"showSkip": true, "showTimer": false},
      "assets": {"script_urls": ["$TOLOKA_ASSETS/js/toloka-handlebars-templates.js"]}
    }
  },
  "assignments_issuing_type": "EXTERNAL",
  "assignments_issuing_view_config": {"redirect_url": "https://gate.example.com/toloka/start"},
  "assignments_automerge_enabled": false,
  "max_active_assignments_count": 15,
  "metadata": {
    "ptmik_partner_name": ["Acme Label"],
    "ptmik_partner_url": ["https://acme.example.com"],
    "ptmik_bonus_price_min": ["0.50"],
    "ptmik_bonus_price_max": ["2.00"]
  },
  "quality_control": {"configs": [{
    "collector_config": {"type": "SKIPPED_IN_ROW_ASSIGNMENTS"},
    "rules": [{
      "conditions": [{"key": "skipped_in_row_count", "operator": "GTE", "value": 10}],
      "action": {"type": "REJECT_ALL_ASSIGNMENTS", "parameters": {"public_comment": "Skipped more than 10 task suites in a row"}}
    }]
  }]},
  "localization_config": {
    "default_language": "EN",
    "additional_languages": [{"language": "RU", "public_name": {"value": "Дорожные знаки", "source": "REQUESTER"}}]
  }
}`

func distribution() *TaskDistributionFunction {
	return &TaskDistributionFunction{
		Scope: "PROJECT", Distribution: "UNIFORM", WindowDays: Ptr(7),
		Intervals: []DistributionInterval{{From: Ptr(1), To: Ptr(100), Frequency: Ptr(5)}, {From: Ptr(101), To: Ptr(1000), Frequency: Ptr(25)}},
	}
}

const distributionJSON = `{"scope": "PROJECT", "distribution": "UNIFORM", "window_days": 7,
  "intervals": [{"from": 1, "to": 100, "frequency": 5}, {"from": 101, "to": 1000, "frequency": 25}]}`

// seedPool is every field of seed 003's example, with seed 004's rules.
func seedPool() *Pool {
	expire := NewTime(time.Date(2020, 9, 1, 13, 0, 0, 0, time.UTC))
	return &Pool{
		ProjectID:              "1",
		PrivateName:            "My first pool",
		PrivateComment:         "This is my first pool",
		PublicDescription:      "Pool's description ",
		MayContainAdultContent: Ptr(false),
		WillExpire:             &expire,
		RewardPerAssignment:    dec("0.020"),
		DynamicPricingConfig: &DynamicPricingConfig{Type: "SKILL", SkillID: "1289", Intervals: []PricingInterval{
			{From: Ptr(0), To: Ptr(60), RewardPerAssignment: dec("0.03")},
			{From: Ptr(61), To: Ptr(100), RewardPerAssignment: dec("0.04")},
		}},
		AssignmentMaxDurationSeconds:       Ptr(300),
		AutoAcceptSolutions:                Ptr(true),
		AutoAcceptPeriodDay:                Ptr(7),
		AutoCloseAfterCompleteDelaySeconds: Ptr(60),
		AssignmentsIssuingConfig:           &AssignmentsIssuingConfig{IssueTaskSuitesInCreationOrder: Ptr(false)},
		Filter:                             json.RawMessage(`{"and":[{"category":"profile","key":"adult_allowed","operator":"EQ","value":true}]}`),
		QualityControl: &QualityControl{
			TrainingRequirement: &TrainingRequirement{TrainingPoolID: "21", TrainingPassingSkillValue: Ptr(70)},
			CaptchaFrequency:    "LOW",
			Configs: []QualityControlConfig{{
				CollectorConfig: &CollectorConfig{Type: "GOLDEN_SET", Parameters: &CollectorParameters{HistorySize: Ptr(10)}},
				Rules: []Rule{
					{
						Conditions: []Condition{{Key: "golden_set_answers_count", Operator: "GT", Value: json.RawMessage("7")}},
						Action:     &Action{Type: "SET_SKILL_FROM_OUTPUT_FIELD", Parameters: &ActionParameters{SkillID: "42", FromField: "golden_set_correct_answers_rate"}},
					},
					{
						Conditions: []Condition{
							{Key: "golden_set_answers_count", Operator: "GT", Value: json.RawMessage("7")},
							{Key: "golden_set_correct_answers_rate", Operator: "LT", Value: json.RawMessage("75")},
						},
						Action: &Action{Type: "RESTRICTION_V2", Parameters: &ActionParameters{
							Scope: "PROJECT", DurationUnit: "DAYS", Duration: Ptr(10), PrivateComment: "Control tasks were not completed",
						}},
					},
				},
			}},
			CheckpointsConfig: &CheckpointsConfig{
				RealSettings:     &CheckpointSettings{TargetOverlap: Ptr(5), TaskDistributionFunction: distribution()},
				GoldenSettings:   &CheckpointSettings{TargetOverlap: Ptr(5), TaskDistributionFunction: distribution()},
				TrainingSettings: &CheckpointSettings{TargetOverlap: Ptr(5), TaskDistributionFunction: distribution()},
			},
		},
		DynamicOverlapConfig: &DynamicOverlapConfig{
			Type: "BASIC", MaxOverlap: Ptr(5), MinConfidence: dec("0.9"), AnswerWeightSkillID: "1289",
			Fields: []DynamicOverlapField{{Name: "result"}},
		},
		Defaults: &PoolDefaults{DefaultOverlapForNewTaskSuites: Ptr(3), DefaultOverlapForNewTasks: Ptr(3)},
		MixerConfig: &MixerConfig{
			RealTasksCount: Ptr(6), GoldenTasksCount: Ptr(1), TrainingTasksCount: Ptr(1),
			MinRealTasksCount: Ptr(2), MinGoldenTasksCount: Ptr(0), MinTrainingTasksCount: Ptr(0),
			ForceLastAssignment: Ptr(true), ForceLastAssignmentDelaySeconds: Ptr(10),
			MixTasksInCreationOrder: Ptr(true), ShuffleTasksInTaskSuite: Ptr(false),
			GoldenTaskDistributionFunction:   distribution(),
			TrainingTaskDistributionFunction: distribution(),
		},
		Priority: Ptr(10),
	}
}

const seedPoolJSON = `{
  "project_id": "1",
  "private_name": "My first pool",
  "private_comment": "This is my first pool",
  "public_description": "Pool's description ",
  "may_contain_adult_content": false,
  "will_expire": "2020-09-01T13:00:00",
  "reward_per_assignment": 0.020,
  "dynamic_pricing_config": {"type": "SKILL", "skill_id": "1289", "intervals": [
    {"from": 0, "to": 60, "reward_per_assignment": 0.03},
    {"from": 61, "to": 100, "reward_per_assignment": 0.04}]},
  "assignment_max_duration_seconds": 300,
  "auto_accept_solutions": true,
  "auto_accept_period_day": 7,
  "auto_close_after_complete_delay_seconds": 60,
  "assignments_issuing_config": {"issue_task_suites_in_creation_order": false},
  "filter": {"and":[{"category":"profile","key":"adult_allowed","operator":"EQ","value":true}]},
  "quality_control": {
    "training_requirement": {"training_pool_id": "21", "training_passing_skill_value": 70},
    "captcha_frequency": "LOW",
    "configs": [{
      "collector_config": {"type": "GOLDEN_SET", "parameters": {"history_size": 10}},
      "rules": [
        {"conditions": [{"key": "golden_set_answers_count", "operator": "GT", "value": 7}],
         "action": {"type": "SET_SKILL_FROM_OUTPUT_FIELD", "parameters": {"skill_id": "42", "from_field": "golden_set_correct_answers_rate"}}},
        {"conditions": [{"key": "golden_set_answers_count", "operator": "GT", "value": 7},
                        {"key": "golden_set_correct_answers_rate", "operator": "LT", "value": 75}],
         "action": {"type": "RESTRICTION_V2", "parameters": {"scope": "PROJECT", "duration_unit": "DAYS", "duration": 10, "private_comment": "Control tasks were not completed"}}}
      ]
    }],
    "checkpoints_config": {
      "real_settings": {"target_overlap": 5, "task_distribution_function": ` + distributionJSON + `},
      "golden_settings": {"target_overlap": 5, "task_distribution_function": ` + distributionJSON + `},
      "training_settings": {"target_overlap": 5, "task_distribution_function": ` + distributionJSON + `}
    }
  },
  "dynamic_overlap_config": {"type": "BASIC", "max_overlap": 5, "min_confidence": 0.9, "answer_weight_skill_id": "1289", "fields": [{"name": "result"}]},
  "defaults": {"default_overlap_for_new_task_suites": 3, "default_overlap_for_new_tasks": 3},
  "mixer_config": {
    "real_tasks_count": 6, "golden_tasks_count": 1, "training_tasks_count": 1,
    "min_real_tasks_count": 2, "min_golden_tasks_count": 0, "min_training_tasks_count": 0,
    "force_last_assignment": true, "force_last_assignment_delay_seconds": 10,
    "mix_tasks_in_creation_order": true, "shuffle_tasks_in_task_suite": false,
    "golden_task_distribution_function": ` + distributionJSON + `,
    "training_task_distribution_function": ` + distributionJSON + `
  },
  "priority": 10
}`

func TestRequestShapes(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 8, 22, 14, 0, 0, 0, time.UTC)
	end := time.Date(2024, 8, 22, 16, 15, 0, 250_000_000, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		name       string
		call       func(context.Context, *Account) error
		response   step
		wantMethod string
		wantPath   string
		wantQuery  url.Values
		wantBody   string // "" means no body
	}{
		{
			name: "create EXTERNAL project",
			call: func(ctx context.Context, a *Account) error {
				p := externalProject()
				p.ID, p.Status = "ignored", ProjectActive // set by Toloka: not sent
				_, err := a.CreateProject(ctx, p)
				return err
			},
			response:   reply(http.StatusCreated, `{"id":"7","status":"ACTIVE"}`),
			wantMethod: "POST", wantPath: "/api/v1/projects", wantBody: externalProjectJSON,
		},
		{
			name:       "get project",
			call:       func(ctx context.Context, a *Account) error { _, err := a.GetProject(ctx, "7"); return err },
			response:   reply(http.StatusOK, `{"id":"7"}`),
			wantMethod: "GET", wantPath: "/api/v1/projects/7",
		},
		{
			name: "list projects",
			call: func(ctx context.Context, a *Account) error {
				_, err := a.ListProjects(ctx, ListOptions{
					Limit: 300, Sort: "-created", IDGt: "10", Status: "ACTIVE",
					CreatedGte: NewTime(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)),
					Filters:    url.Values{"owner_id": {"o1"}},
				})
				return err
			},
			response:   reply(http.StatusOK, `{"items":[],"has_more":false}`),
			wantMethod: "GET", wantPath: "/api/v1/projects",
			wantQuery: url.Values{"limit": {"300"}, "sort": {"-created"}, "id_gt": {"10"}, "status": {"ACTIVE"}, "created_gte": {"2024-01-02T03:04:05"}, "owner_id": {"o1"}},
		},
		{
			name: "update project sends no server fields",
			call: func(ctx context.Context, a *Account) error {
				p := &Project{ID: "7", Status: ProjectActive, Created: &Time{start}, Owner: &Owner{ID: "o"}, PublicName: "n", PublicDescription: "d"}
				_, err := a.UpdateProject(ctx, "7", p)
				return err
			},
			response:   reply(http.StatusOK, `{"id":"7"}`),
			wantMethod: "PUT", wantPath: "/api/v1/projects/7", wantBody: `{"public_name":"n","public_description":"d"}`,
		},
		{
			name:       "archive project",
			call:       func(ctx context.Context, a *Account) error { _, err := a.ArchiveProject(ctx, "7"); return err },
			response:   reply(http.StatusAccepted, `{"id":"op1","type":"PROJECT.ARCHIVE","status":"PENDING"}`),
			wantMethod: "POST", wantPath: "/api/v1/projects/7/archive",
		},
		{
			name:       "create pool with every seed field",
			call:       func(ctx context.Context, a *Account) error { _, err := a.CreatePool(ctx, seedPool()); return err },
			response:   reply(http.StatusCreated, `{"id":"21"}`),
			wantMethod: "POST", wantPath: "/api/v1/pools", wantBody: seedPoolJSON,
		},
		{
			name: "update pool",
			call: func(ctx context.Context, a *Account) error {
				p := &Pool{ID: "21", Status: PoolClosed, LastCloseReason: CloseManual, Type: "REGULAR", ProjectID: "1", RewardPerAssignment: dec("10.520")}
				_, err := a.UpdatePool(ctx, "21", p)
				return err
			},
			response:   reply(http.StatusOK, `{"id":"21"}`),
			wantMethod: "PUT", wantPath: "/api/v1/pools/21", wantBody: `{"project_id":"1","reward_per_assignment":10.520}`,
		},
		{
			name:       "patch pool priority",
			call:       func(ctx context.Context, a *Account) error { _, err := a.SetPoolPriority(ctx, "21", 0); return err },
			response:   reply(http.StatusOK, `{"id":"21","priority":0}`),
			wantMethod: "PATCH", wantPath: "/api/v1/pools/21", wantBody: `{"priority":0}`,
		},
		{
			name:       "open pool",
			call:       func(ctx context.Context, a *Account) error { _, err := a.OpenPool(ctx, "21"); return err },
			response:   reply(http.StatusAccepted, `{"id":"op1"}`),
			wantMethod: "POST", wantPath: "/api/v1/pools/21/open",
		},
		{
			name:       "close pool",
			call:       func(ctx context.Context, a *Account) error { _, err := a.ClosePool(ctx, "21"); return err },
			response:   reply(http.StatusNoContent, ``),
			wantMethod: "POST", wantPath: "/api/v1/pools/21/close",
		},
		{
			name:       "archive pool",
			call:       func(ctx context.Context, a *Account) error { _, err := a.ArchivePool(ctx, "21"); return err },
			response:   reply(http.StatusAccepted, `{"id":"op1"}`),
			wantMethod: "POST", wantPath: "/api/v1/pools/21/archive",
		},
		{
			name:       "get operation",
			call:       func(ctx context.Context, a *Account) error { _, err := a.GetOperation(ctx, "op1"); return err },
			response:   reply(http.StatusOK, `{"id":"op1","status":"RUNNING"}`),
			wantMethod: "GET", wantPath: "/api/v1/operations/op1",
		},
		{
			name: "get assignment",
			call: func(ctx context.Context, a *Account) error {
				_, err := a.GetAssignment(ctx, "00022cfa46--637cf4098ccdeb4a260737de")
				return err
			},
			response:   reply(http.StatusOK, `{"id":"00022cfa46--637cf4098ccdeb4a260737de","user_id":"u1"}`),
			wantMethod: "GET", wantPath: "/api/v1/assignments/00022cfa46--637cf4098ccdeb4a260737de",
		},
		{
			name: "accept assignment",
			call: func(ctx context.Context, a *Account) error {
				_, err := a.AcceptAssignment(ctx, "as1", "Well done")
				return err
			},
			response:   reply(http.StatusOK, `{"id":"as1","status":"ACCEPTED"}`),
			wantMethod: "PATCH", wantPath: "/api/v1/assignments/as1", wantBody: `{"status":"ACCEPTED","public_comment":"Well done"}`,
		},
		{
			name: "reject assignment",
			call: func(ctx context.Context, a *Account) error {
				_, err := a.RejectAssignment(ctx, "as1", "Boxes missing")
				return err
			},
			response:   reply(http.StatusOK, `{"id":"as1","status":"REJECTED"}`),
			wantMethod: "PATCH", wantPath: "/api/v1/assignments/as1", wantBody: `{"status":"REJECTED","public_comment":"Boxes missing"}`,
		},
		{
			name: "external submit, every field",
			call: func(ctx context.Context, a *Account) error {
				_, err := a.SubmitExternal(ctx, &ExternalSubmit{
					PoolID: "123", UserID: "1a2b3c4d56781a2b3c4d5678", RetryID: "sub-9f8e",
					Reward: money.MustParse("10.520"), Quality: dec("0.21"), CloseSession: Ptr(true),
					CustomLog: `{"ip":"203.0.113.9"}`, StartTime: &start, EndTime: &end, Skipped: Ptr(false),
					GoldenTasksCount: Ptr(2), TrainingTasksCount: Ptr(3), RealTasksCount: Ptr(4),
				})
				return err
			},
			response:   reply(http.StatusOK, `{"speed_quality_balance_match":false,"restriction_match":true,"filter_match":true}`),
			wantMethod: "POST", wantPath: "/api/v1/tasks/external/submit",
			wantBody: `{"pool_id": 123, "user_id": "1a2b3c4d56781a2b3c4d5678", "retry_id": "sub-9f8e",
			  "reward": 10.520, "quality": 0.21, "close_session": true, "custom_log": "{\"ip\":\"203.0.113.9\"}",
			  "start_time": "2024-08-22T14:00:00Z", "end_time": "2024-08-22T14:15:00.250Z", "skipped": false,
			  "golden_tasks_count": 2, "training_tasks_count": 3, "real_tasks_count": 4}`,
		},
		{
			name: "external submit, required fields only",
			call: func(ctx context.Context, a *Account) error {
				_, err := a.SubmitExternal(ctx, &ExternalSubmit{PoolID: "123", UserID: "u1", Reward: money.MustParse("0")})
				return err
			},
			response:   reply(http.StatusOK, `{}`),
			wantMethod: "POST", wantPath: "/api/v1/tasks/external/submit",
			wantBody: `{"pool_id": 123, "user_id": "u1", "reward": 0}`,
		},
		{
			name: "set user restriction",
			call: func(ctx context.Context, a *Account) error {
				_, err := a.SetUserRestriction(ctx, UserRestriction{ID: "x", Scope: ScopePool, UserID: "u1", PoolID: "21", PrivateComment: "fraud",
					WillExpire: &Time{time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC)}})
				return err
			},
			response:   reply(http.StatusOK, `{"id":"r1","created":"2025-01-01T00:00:00"}`),
			wantMethod: "PUT", wantPath: "/api/v1/user-restrictions",
			wantBody: `{"scope":"POOL","user_id":"u1","pool_id":"21","private_comment":"fraud","will_expire":"2025-01-02T03:04:05.678"}`,
		},
		{
			name:       "delete user restriction",
			call:       func(ctx context.Context, a *Account) error { return a.DeleteUserRestriction(ctx, "r1") },
			response:   reply(http.StatusNoContent, ``),
			wantMethod: "DELETE", wantPath: "/api/v1/user-restrictions/r1",
		},
		{
			name: "set user skill",
			call: func(ctx context.Context, a *Account) error {
				_, err := a.SetUserSkill(ctx, UserSkill{SkillID: "42", UserID: "u1", Value: dec("87.50"), Reason: "exam"})
				return err
			},
			response:   reply(http.StatusOK, `{"id":"s1","skill_id":"42","user_id":"u1","value":88,"exact_value":87.50}`),
			wantMethod: "PUT", wantPath: "/api/v1/user-skills",
			wantBody: `{"skill_id":"42","user_id":"u1","value":87.50,"reason":"exam"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil, tc.response)
			if err := tc.call(context.Background(), h.account); err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := h.fake.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tc.wantMethod || r.Path != tc.wantPath {
				t.Errorf("request %s %s, want %s %s", r.Method, r.Path, tc.wantMethod, tc.wantPath)
			}
			gotQuery, _ := url.ParseQuery(r.Query)
			if tc.wantQuery == nil {
				tc.wantQuery = url.Values{}
			}
			if diff := cmp.Diff(tc.wantQuery, gotQuery); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
			wantHeader := map[string]string{
				"Authorization": "OAuth " + oauthToken,
				"Accept":        "application/json",
				"User-Agent":    "crowdgate-test",
				"Content-Type":  "",
			}
			if tc.wantBody != "" {
				wantHeader["Content-Type"] = "application/json"
			}
			gotHeader := map[string]string{}
			for k := range wantHeader {
				gotHeader[k] = r.Header.Get(k)
			}
			if diff := cmp.Diff(wantHeader, gotHeader); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if diff := jsonDiff(t, tc.wantBody, r.Body); diff != "" {
				t.Errorf("body (-want +got):\n%s\ngot: %s", diff, r.Body)
			}
		})
	}
}

func TestSandboxURL(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, reply(http.StatusOK, `{"id":"7"}`))
	a, err := h.client.Account(Credential{Environment: Sandbox, Token: apiKeyToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetProject(context.Background(), "7"); err != nil {
		t.Fatal(err)
	}
	r := h.fake.requests()[0]
	if r.Path != "/sandbox/api/v1/projects/7" {
		t.Errorf("path %s, want the sandbox base URL", r.Path)
	}
	if got, want := r.Header.Get("Authorization"), "ApiKey "+apiKeyToken; got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
}

func TestAuthorizationScheme(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cred Credential
		want string
	}{
		{"OAuth token", Credential{Environment: Production, Token: oauthToken}, "OAuth " + oauthToken},
		{"three-part API key", Credential{Environment: Production, Token: apiKeyToken}, "ApiKey " + apiKeyToken},
		{"two dots but an empty part", Credential{Environment: Production, Token: "a..b"}, "OAuth a..b"},
		{"four parts", Credential{Environment: Production, Token: "a.b.c.d"}, "OAuth a.b.c.d"},
		{"forced ApiKey", Credential{Environment: Production, Token: oauthToken, Scheme: AuthAPIKey}, "ApiKey " + oauthToken},
		{"forced OAuth", Credential{Environment: Production, Token: apiKeyToken, Scheme: AuthOAuth}, "OAuth " + apiKeyToken},
		{"pasted with scheme", Credential{Environment: Production, Token: "ApiKey " + oauthToken}, "ApiKey " + oauthToken},
		{"pasted with oauth scheme", Credential{Environment: Production, Token: " oauth " + apiKeyToken + "\n"}, "OAuth " + apiKeyToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil, reply(http.StatusOK, `{"id":"7"}`))
			a, err := h.client.Account(tc.cred)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.GetProject(context.Background(), "7"); err != nil {
				t.Fatal(err)
			}
			if got := h.fake.requests()[0].Header.Get("Authorization"); got != tc.want {
				t.Errorf("Authorization %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAccountRejectsBadCredentials(t *testing.T) {
	t.Parallel()
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cred := range []Credential{
		{Environment: "staging", Token: oauthToken},
		{Environment: Production},
		{Environment: Production, Token: "OAuth "},
		{Environment: Production, Token: "two words"},
		// Bytes an HTTP header cannot carry: the request would never leave.
		{Environment: Production, Token: "\x7f"},
		{Environment: Production, Token: "key\x00x"},
		{Environment: Production, Token: "clé.secrète.x"},
		{Environment: Production, Token: oauthToken, Scheme: "Bearer"},
	} {
		if _, err := c.Account(cred); err == nil {
			t.Errorf("Account(%v) succeeded", cred)
		} else if containsSecret(err.Error()) {
			t.Errorf("error %q contains the token", err)
		}
	}
}

func TestConfigURLs(t *testing.T) {
	t.Parallel()
	c, err := New(Config{SandboxURL: "http://sim:8080/api/v1/"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[Environment]string{Production: DefaultProductionURL, Sandbox: "http://sim:8080/api/v1"}
	if diff := cmp.Diff(want, c.urls); diff != "" {
		t.Errorf("base URLs (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"toloka.dev/api/v1", "ftp://x/api", "https://user:pw@toloka.dev/api/v1", "https://toloka.dev/api/v1?x=1"} {
		if _, err := New(Config{ProductionURL: bad}); err == nil {
			t.Errorf("New accepted ProductionURL %q", bad)
		}
	}
	if e, err := ParseEnvironment(" Sandbox "); err != nil || e != Sandbox {
		t.Errorf("ParseEnvironment: %v, %v", e, err)
	}
	if _, err := ParseEnvironment("staging"); err == nil {
		t.Error("ParseEnvironment accepted staging")
	}
}

// The settings' defaults are the client's: a gateway configured by nothing
// keeps Toloka's documented limits under the same Redis keys.
func TestDefaultSettingsAreTheDefaultLimits(t *testing.T) {
	got := DefaultSettings()
	want := Settings{ProductionURL: DefaultProductionURL, SandboxURL: DefaultSandboxURL, Limits: DefaultLimits()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DefaultSettings (-want +got):\n%s", diff)
	}
}
