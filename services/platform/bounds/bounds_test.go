package bounds

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// validProject is a project with every kind of field set, within bounds.
func validProject() *crowdgatev1.Project {
	return &crowdgatev1.Project{
		CredentialId:       "cred_0123456789abcdef",
		PublicName:         strings.Repeat("é", 150), // characters, not bytes
		PublicDescription:  strings.Repeat("d", 2048),
		PublicInstructions: strings.Repeat("<p>Do it.</p>", 10000),
		PlatformUrl:        "https://label.example.com/start",
		PartnerName:        "Acme",
		PartnerUrl:         "https://label.example.com",
		BonusPriceMin:      "0.50",
		BonusPriceMax:      "123456789012.12345678",
		TolokerRequirements: &crowdgatev1.TolokerRequirements{
			Countries:   repeat("RU", 250),
			Languages:   []string{"EN", "RU"},
			ClientTypes: []string{"BROWSER", "TOLOKA_APP"},
			Filter:      nestedFilter(10),
		},
		TaskSpec: &crowdgatev1.TaskSpec{
			InputSpec:  map[string]*crowdgatev1.FieldSpec{"image": {Type: "url"}, strings.Repeat("k", 128): {Type: "string"}},
			OutputSpec: map[string]*crowdgatev1.FieldSpec{"result": {Type: "string", AllowedValues: []*structpb.Value{structpb.NewStringValue("cat")}}},
			ViewSpec: &crowdgatev1.ViewSpec{
				Markup: strings.Repeat("m", BigTextChars),
				Config: nestedStruct(25),
				Assets: &crowdgatev1.ViewAssets{ScriptUrls: repeat("$TOLOKA_ASSETS/js/a.js", 50)},
			},
		},
		LocalizationConfig: &crowdgatev1.LocalizationConfig{DefaultLanguage: "EN", AdditionalLanguages: []*crowdgatev1.AdditionalLanguage{
			{Language: "RU", PublicName: &crowdgatev1.LocalizedText{Value: "Знаки", Source: "REQUESTER"}},
		}},
		QualityControl: &crowdgatev1.ProjectQualityControl{Configs: []*crowdgatev1.QualityControlConfig{{
			Rules: []*crowdgatev1.QualityControlRule{{
				Conditions: []*crowdgatev1.RuleCondition{{Key: "skipped_in_row_count"}},
				Action: &crowdgatev1.RuleAction{Parameters: &crowdgatev1.RuleActionParameters{
					PrivateComment: strings.Repeat("c", 499), PublicComment: strings.Repeat("c", 2048),
				}},
			}},
		}}},
		CreateTime: timestamppb.New(now.Add(-time.Hour)),
	}
}

func validPool() *crowdgatev1.Pool {
	return &crowdgatev1.Pool{
		ProjectId:           "prj_0123456789abcdef",
		PrivateName:         strings.Repeat("п", 256),
		WillExpire:          timestamppb.New(now.AddDate(4, 0, 0)),
		RewardPerAssignment: "0.05",
		Filter:              nestedFilter(10),
		DynamicPricingConfig: &crowdgatev1.DynamicPricingConfig{
			Intervals: make([]*crowdgatev1.PricingInterval, 100),
		},
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// nestedFilter is a filter whose and-lists nest depth levels.
func nestedFilter(depth int) *crowdgatev1.Filter {
	f := &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Condition{Condition: &crowdgatev1.FilterCondition{
		Category: "profile", Key: "country", Operator: "EQ", Value: structpb.NewStringValue("RU"),
	}}}
	for range depth {
		f = &crowdgatev1.Filter{Node: &crowdgatev1.Filter_And{And: &crowdgatev1.FilterList{Filters: []*crowdgatev1.Filter{f}}}}
	}
	return f
}

// nestedStruct is a JSON object nested depth levels: {"a": {"a": ...}}.
func nestedStruct(depth int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{"leaf": structpb.NewStringValue("x")}}
	for range depth {
		s = &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStructValue(s)}}
	}
	return s
}

func TestCheck(t *testing.T) {
	mutProject := func(mutate func(*crowdgatev1.Project)) proto.Message {
		p := validProject()
		mutate(p)
		return &crowdgatev1.CreateProjectRequest{Project: p}
	}
	mutPool := func(mutate func(*crowdgatev1.Pool)) proto.Message {
		p := validPool()
		mutate(p)
		return &crowdgatev1.CreatePoolRequest{Pool: p}
	}
	rules := func(n int) []*crowdgatev1.QualityControlRule {
		return make([]*crowdgatev1.QualityControlRule, n)
	}
	for _, tc := range []struct {
		name   string
		req    proto.Message
		field  string // "" when within bounds
		reason string // a part of the reason, when it matters
	}{
		{"valid project", mutProject(func(*crowdgatev1.Project) {}), "", ""},
		{"valid pool", mutPool(func(*crowdgatev1.Pool) {}), "", ""},
		{"empty request", &crowdgatev1.CreatePoolRequest{}, "", ""},

		// The review's findings.
		{"pool.private_name of 100,000 characters", mutPool(func(p *crowdgatev1.Pool) { p.PrivateName = strings.Repeat("x", 100000) }),
			"pool.private_name", "at most 256 characters, got 100000"},
		{"a 500 KB api_key", &crowdgatev1.CreateCredentialRequest{DisplayName: "k", ApiKey: strings.Repeat("k", 500<<10)},
			"api_key", "at most 256 bytes"},
		{"start_time in year 9999", &crowdgatev1.SubmitRequest{Reward: "1", StartTime: timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))},
			"start_time", "in the future"},

		// Toloka's documented limits, in characters.
		{"public_name 151 characters", mutProject(func(p *crowdgatev1.Project) { p.PublicName = strings.Repeat("é", 151) }),
			"project.public_name", "at most 150 characters, got 151"},
		{"public_description 2049", mutProject(func(p *crowdgatev1.Project) { p.PublicDescription = strings.Repeat("d", 2049) }),
			"project.public_description", ""},
		{"restriction private_comment 500", mutProject(func(p *crowdgatev1.Project) {
			p.QualityControl.Configs[0].Rules[0].Action.Parameters.PrivateComment = strings.Repeat("c", 500)
		}), "project.quality_control.configs[0].rules[0].action.parameters.private_comment", "at most 499"},
		{"reject comment 2049", &crowdgatev1.RejectAssignmentRequest{AssignmentId: "a", PublicComment: strings.Repeat("ж", 2049)},
			"public_comment", ""},
		{"instructions over the big-text bound", mutProject(func(p *crowdgatev1.Project) { p.PublicInstructions = strings.Repeat("i", BigTextChars+1) }),
			"project.public_instructions", ""},
		{"view markup over the big-text bound", mutProject(func(p *crowdgatev1.Project) { p.TaskSpec.ViewSpec.Markup = strings.Repeat("m", BigTextChars+1) }),
			"project.task_spec.view_spec.markup", ""},

		// Ids and machine strings, in bytes.
		{"pool_id of 129 bytes", &crowdgatev1.GetPoolRequest{PoolId: strings.Repeat("p", 129)}, "pool_id", "at most 128 bytes"},
		{"pool_id of 128 bytes", &crowdgatev1.GetPoolRequest{PoolId: strings.Repeat("p", 128)}, "", ""},
		{"an id of 65 two-byte characters", &crowdgatev1.GetSessionRequest{SessionId: strings.Repeat("é", 65)}, "session_id", "bytes"},
		{"reward of 33 bytes", &crowdgatev1.SubmitRequest{Reward: strings.Repeat("1", 33)}, "reward", ""},
		{"page_token of 2 KiB", &crowdgatev1.ListPoolsRequest{PageToken: strings.Repeat("t", 2048)}, "page_token", ""},
		{"code of 1 KiB", &crowdgatev1.ExchangeCodeRequest{Code: strings.Repeat("c", 1024)}, "code", ""},

		// Repeated fields: an element, or the first element past the bound.
		{"a country of 17 bytes", mutProject(func(p *crowdgatev1.Project) { p.TolokerRequirements.Countries[3] = strings.Repeat("R", 17) }),
			"project.toloker_requirements.countries[3]", "at most 16 bytes"},
		{"251 countries", mutProject(func(p *crowdgatev1.Project) { p.TolokerRequirements.Countries = repeat("RU", 251) }),
			"project.toloker_requirements.countries[250]", "countries may have at most 250 elements, got 251"},
		{"11 client types", mutProject(func(p *crowdgatev1.Project) { p.TolokerRequirements.ClientTypes = repeat("BROWSER", 11) }),
			"project.toloker_requirements.client_types[10]", ""},
		{"51 script URLs", mutProject(func(p *crowdgatev1.Project) { p.TaskSpec.ViewSpec.Assets.ScriptUrls = repeat("a.js", 51) }),
			"project.task_spec.view_spec.assets.script_urls[50]", ""},
		{"a script URL of 2049 characters", mutProject(func(p *crowdgatev1.Project) { p.TaskSpec.ViewSpec.Assets.ScriptUrls[49] = strings.Repeat("u", 2049) }),
			"project.task_spec.view_spec.assets.script_urls[49]", ""},
		{"101 rules (the default)", mutProject(func(p *crowdgatev1.Project) { p.QualityControl.Configs[0].Rules = rules(101) }),
			"project.quality_control.configs[0].rules[100]", "at most 100 elements"},
		{"100 rules (the default)", mutProject(func(p *crowdgatev1.Project) { p.QualityControl.Configs[0].Rules = rules(100) }), "", ""},
		{"an oversized element deep in a list", mutProject(func(p *crowdgatev1.Project) {
			p.LocalizationConfig.AdditionalLanguages = append(p.LocalizationConfig.AdditionalLanguages,
				&crowdgatev1.AdditionalLanguage{Language: "DE", PublicDescription: &crowdgatev1.LocalizedText{Source: strings.Repeat("s", 65)}})
		}), "project.localization_config.additional_languages[1].public_description.source", ""},
		{"201 filters in one list", mutPool(func(p *crowdgatev1.Pool) {
			p.Filter = &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Or{Or: &crowdgatev1.FilterList{Filters: make([]*crowdgatev1.Filter, 201)}}}
		}), "pool.filter.or.filters[200]", ""},
		{"update mask of 101 paths", &crowdgatev1.UpdatePoolRequest{UpdateMask: &fieldmaskpb.FieldMask{Paths: repeat("private_name", 101)}},
			"update_mask.paths[100]", ""},

		// Maps: the count and a key name the map; a value names its key.
		{"201 input fields", mutProject(func(p *crowdgatev1.Project) {
			p.TaskSpec.InputSpec = map[string]*crowdgatev1.FieldSpec{}
			for i := range 201 {
				p.TaskSpec.InputSpec[strings.Repeat("f", i+1)] = &crowdgatev1.FieldSpec{Type: "string"}
			}
		}), "project.task_spec.input_spec", "at most 200 entries, got 201"},
		{"an input field name of 129 characters", mutProject(func(p *crowdgatev1.Project) {
			p.TaskSpec.InputSpec[strings.Repeat("k", 129)] = &crowdgatev1.FieldSpec{Type: "url"}
		}), "project.task_spec.input_spec", "keys may have at most 128 characters"},
		{"an input field's type of 65 bytes", mutProject(func(p *crowdgatev1.Project) { p.TaskSpec.InputSpec["image"].Type = strings.Repeat("t", 65) }),
			`project.task_spec.input_spec["image"].type`, ""},
		{"a Struct key of 257 characters", mutProject(func(p *crowdgatev1.Project) {
			p.TaskSpec.ViewSpec.Config.Fields[strings.Repeat("k", 257)] = structpb.NewNullValue()
		}), "project.task_spec.view_spec.config.fields", "keys may have at most 256"},
		{"a Struct string value of 64 Ki + 1 characters", mutProject(func(p *crowdgatev1.Project) {
			p.TaskSpec.ViewSpec.Config.Fields["text"] = structpb.NewStringValue(strings.Repeat("x", 64<<10+1))
		}), `project.task_spec.view_spec.config.fields["text"].string_value`, ""},
		{"a filter value of 64 Ki + 1 characters", mutPool(func(p *crowdgatev1.Pool) {
			p.Filter = &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Condition{Condition: &crowdgatev1.FilterCondition{Value: structpb.NewStringValue(strings.Repeat("x", 64<<10+1))}}}
		}), "pool.filter.condition.value.string_value", ""},
		{"1001 allowed values", mutProject(func(p *crowdgatev1.Project) {
			p.TaskSpec.OutputSpec["result"].AllowedValues = make([]*structpb.Value, 1001)
		}), `project.task_spec.output_spec["result"].allowed_values[1000]`, ""},

		// Depth: filters and Struct values are recursive.
		{"a filter nested 40 levels", mutPool(func(p *crowdgatev1.Pool) { p.Filter = nestedFilter(40) }), "pool.filter.and.filters[0]", "nests more than 64 messages deep"},
		{"a Struct nested 40 levels", mutProject(func(p *crowdgatev1.Project) { p.TaskSpec.ViewSpec.Config = nestedStruct(40) }),
			`project.task_spec.view_spec.config.fields["a"]`, "nests more than 64"},

		// Timestamps.
		{"will_expire 6 years ahead", mutPool(func(p *crowdgatev1.Pool) { p.WillExpire = timestamppb.New(now.AddDate(6, 0, 0)) }),
			"pool.will_expire", "more than 5 years in the future"},
		{"will_expire in year 9999", mutPool(func(p *crowdgatev1.Pool) {
			p.WillExpire = timestamppb.New(time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC))
		}), "pool.will_expire", ""},
		{"will_expire not a valid time", mutPool(func(p *crowdgatev1.Pool) { p.WillExpire = &timestamppb.Timestamp{Seconds: 1e13} }),
			"pool.will_expire", "not a valid time"},
		{"create_time before Toloka", mutProject(func(p *crowdgatev1.Project) { p.CreateTime = &timestamppb.Timestamp{} }),
			"project.create_time", "must not be before 2014-01-01"},
		{"start_time 2 years ahead", &crowdgatev1.SubmitRequest{StartTime: timestamppb.New(now.AddDate(2, 0, 0))}, "start_time", "more than 1 year"},
		{"end_time 11 months ahead", &crowdgatev1.SubmitRequest{EndTime: timestamppb.New(now.AddDate(0, 11, 0))}, "", ""},
		{"end_time with bad nanos", &crowdgatev1.SubmitRequest{EndTime: &timestamppb.Timestamp{Seconds: now.Unix(), Nanos: -1}}, "end_time", ""},
		{"create_time_from in year 1", &crowdgatev1.ListSubmissionsRequest{CreateTimeFrom: timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))},
			"create_time_from", ""},
		{"create_time_to in year 9999", &crowdgatev1.ListSubmissionsRequest{CreateTimeTo: timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))},
			"create_time_to", ""},
		{"create_time_to tomorrow", &crowdgatev1.ListSubmissionsRequest{CreateTimeTo: timestamppb.New(now.AddDate(0, 0, 1))}, "", ""},

		// Fields of no table entry take the defaults (well-known wrappers
		// stand in for a string and a bytes field added later).
		{"a string over the default", wrapperspb.String(strings.Repeat("s", DefaultChars+1)), "value", "at most 1024 characters"},
		{"a string at the default", wrapperspb.String(strings.Repeat("ж", DefaultChars)), "", ""},
		{"bytes over the default", wrapperspb.Bytes(make([]byte, DefaultBytes+1)), "value", "at most 4096 bytes"},
		{"bytes at the default", wrapperspb.Bytes(make([]byte, DefaultBytes)), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.req.ProtoReflect(), now)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ia *serviceerror.InvalidArgument
			if !errors.As(err, &ia) {
				t.Fatalf("error %v, want INVALID_ARGUMENT naming %s", err, tc.field)
			}
			if strings.Contains(tc.reason, "nests") {
				// Too deep: named where the bound is crossed, under tc.field.
				if !strings.HasPrefix(ia.Field, tc.field) {
					t.Fatalf("names %q (%s), want a field under %q", ia.Field, ia.Reason, tc.field)
				}
			} else if ia.Field != tc.field {
				t.Fatalf("names %q (%s), want %q", ia.Field, ia.Reason, tc.field)
			}
			if !strings.Contains(ia.Reason, tc.reason) {
				t.Errorf("reason %q, want it to say %q", ia.Reason, tc.reason)
			}
			if len(ia.Error()) > 1024 {
				t.Errorf("the error is %d bytes long: it must not echo the oversized value", len(ia.Error()))
			}
		})
	}
}

// TestCheckNamesTheFirstFieldInDeclarationOrder: with several fields out
// of bounds the answer is the same on every call.
func TestCheckNamesTheFirstFieldInDeclarationOrder(t *testing.T) {
	req := &crowdgatev1.SubmitRequest{
		SessionId: strings.Repeat("s", 200), Reward: strings.Repeat("1", 200), CustomLog: strings.Repeat("{", 70000),
		StartTime: timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
	for range 20 {
		var ia *serviceerror.InvalidArgument
		if err := Check(req.ProtoReflect(), now); !errors.As(err, &ia) || ia.Field != "session_id" {
			t.Fatalf("%v, want session_id", err)
		}
	}
	p := validProject()
	p.TaskSpec.InputSpec = map[string]*crowdgatev1.FieldSpec{"b": {Type: strings.Repeat("t", 100)}, "a": {Type: strings.Repeat("t", 100)}, "c": {Type: strings.Repeat("t", 100)}}
	for range 20 {
		var ia *serviceerror.InvalidArgument
		if err := Check((&crowdgatev1.CreateProjectRequest{Project: p}).ProtoReflect(), now); !errors.As(err, &ia) || ia.Field != `project.task_spec.input_spec["a"].type` {
			t.Fatalf("%v, want the first key in order", err)
		}
	}
}

// requestFields returns every field a request of the API can reach, by
// full name.
func requestFields(t *testing.T) map[protoreflect.FullName]protoreflect.FieldDescriptor {
	t.Helper()
	out := map[protoreflect.FullName]protoreflect.FieldDescriptor{}
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			out[fd.FullName()] = fd
			elem := fd
			if fd.IsMap() {
				elem = fd.MapValue()
			}
			if elem.Kind() == protoreflect.MessageKind {
				walk(elem.Message())
			}
		}
	}
	methods := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("crowdgate.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			for j := range fd.Services().Get(i).Methods().Len() {
				walk(fd.Services().Get(i).Methods().Get(j).Input())
				methods++
			}
		}
		return true
	})
	if methods < 30 {
		t.Fatalf("found %d RPCs, want them all", methods)
	}
	return out
}

// TestTable keeps the table honest: every entry names a field a request
// can reach (a bare name, at least one) and only sets limits that apply to
// the field's kind, with a source.
func TestTable(t *testing.T) {
	fields := requestFields(t)
	for name, r := range table {
		var matches []protoreflect.FieldDescriptor
		if strings.Contains(string(name), ".") {
			if fd, ok := fields[name]; ok {
				matches = append(matches, fd)
			}
		} else {
			for _, fd := range fields {
				if protoreflect.FullName(fd.Name()) == name {
					matches = append(matches, fd)
				}
			}
		}
		if len(matches) == 0 {
			t.Errorf("%s names no field of a request", name)
		}
		if r.Source == "" {
			t.Errorf("%s: no source", name)
		}
		if r.Chars < 0 || r.Bytes < 0 || r.Items < 0 || r.KeyChars < 0 || r.Horizon < 0 || (r.Chars != 0 && r.Bytes != 0) {
			t.Errorf("%s: a negative limit, or both Chars and Bytes", name)
		}
		bare := !strings.Contains(string(name), ".")
		compatible := 0
		for _, fd := range matches {
			elem := fd
			if fd.IsMap() {
				elem = fd.MapValue()
			}
			isText := elem.Kind() == protoreflect.StringKind || elem.Kind() == protoreflect.BytesKind
			isTime := elem.Kind() == protoreflect.MessageKind && elem.Message().FullName() == timestampName
			if bare && (r.Chars != 0 || r.Bytes != 0) && !isText {
				// A bare name's length bound applies to the strings of
				// that name; a message of the same name
				// (AdditionalLanguage.public_description) has its own.
				continue
			}
			compatible++
			switch {
			case (r.Chars != 0 || r.Bytes != 0) && !isText:
				t.Errorf("%s: a length bound on %s, a %s field", name, fd.FullName(), elem.Kind())
			case r.Items != 0 && !fd.IsList() && !fd.IsMap():
				t.Errorf("%s: Items on %s, a singular field", name, fd.FullName())
			case r.KeyChars != 0 && !fd.IsMap():
				t.Errorf("%s: KeyChars on %s, not a map", name, fd.FullName())
			case r.Horizon != 0 && !isTime:
				t.Errorf("%s: Horizon on %s, not a Timestamp", name, fd.FullName())
			}
		}
		if len(matches) > 0 && compatible == 0 {
			t.Errorf("%s applies to no field of its kind", name)
		}
	}
}

// TestEveryRequestIsBounded checks that every string, bytes, repeated and
// map field a request can reach has a bound (its table entry or the
// defaults), and that every id is bounded as an id: a field added to the
// API is bounded the day it is added.
func TestEveryRequestIsBounded(t *testing.T) {
	n := 0
	for _, fd := range requestFields(t) {
		r := For(fd)
		elem := fd
		if fd.IsMap() {
			elem = fd.MapValue()
		}
		if (fd.IsList() || fd.IsMap()) && r.Items <= 0 {
			t.Errorf("%s: no bound on its elements", fd.FullName())
		}
		if fd.IsMap() && r.KeyChars <= 0 {
			t.Errorf("%s: no bound on its keys", fd.FullName())
		}
		switch elem.Kind() {
		case protoreflect.StringKind, protoreflect.BytesKind:
			n++
			if r.Chars <= 0 && r.Bytes <= 0 {
				t.Errorf("%s: no length bound", fd.FullName())
			}
			if strings.HasSuffix(string(fd.Name()), "_id") && (r.Bytes == 0 || r.Bytes > IDBytes) {
				t.Errorf("%s: an id bounded by %+v, want at most %d bytes", fd.FullName(), r, IDBytes)
			}
		}
	}
	if n < 100 {
		t.Fatalf("found %d string fields in the API's requests, want them all", n)
	}
}

// TestDefaults documents the defaults the package doc states.
func TestDefaults(t *testing.T) {
	fd := wrapperspb.String("").ProtoReflect().Descriptor().Fields().ByName("value")
	if r := For(fd); r.Chars != 1024 || r.Items != 100 || r.KeyChars != 128 || r.Horizon != 5*Year {
		t.Errorf("defaults %+v", r)
	}
	if MaxDepth != 64 || DefaultBytes != 4096 || !Epoch.Equal(time.Date(2014, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("MaxDepth, DefaultBytes or Epoch changed: update the package doc")
	}
}

func TestDiscardUnknown(t *testing.T) {
	// Field 99 (a varint) is unknown to every message here.
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7)
	p := validProject()
	req := &crowdgatev1.CreateProjectRequest{Project: p}
	for _, m := range []protoreflect.Message{
		req.ProtoReflect(), p.ProtoReflect(), p.TaskSpec.InputSpec["image"].ProtoReflect(),
		p.QualityControl.Configs[0].Rules[0].ProtoReflect(), p.TolokerRequirements.Filter.ProtoReflect(),
	} {
		m.SetUnknown(unknown)
	}
	before := proto.Size(req)
	DiscardUnknown(req.ProtoReflect())
	if got, want := before-proto.Size(req), 5*len(unknown); got != want {
		t.Errorf("dropped %d bytes, want %d", got, want)
	}
	if !proto.Equal(req, &crowdgatev1.CreateProjectRequest{Project: validProject()}) {
		t.Error("known fields changed")
	}
}

// BenchmarkCheckSubmit is the cost the interceptor adds to Submit, the hot
// path.
func BenchmarkCheckSubmit(b *testing.B) {
	req := &crowdgatev1.SubmitRequest{
		SessionId: "ses_000000020000000000000000000wmzehxexrsd6y", RetryId: "r-0123456789", Reward: "0.05", Quality: "0.9",
		CustomLog: `{"ip":"203.0.113.9"}`, StartTime: timestamppb.New(now.Add(-time.Minute)), EndTime: timestamppb.New(now), RealTasksCount: proto.Int32(3),
	}
	m := req.ProtoReflect()
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(m, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckProject is a large request: a full project.
func BenchmarkCheckProject(b *testing.B) {
	m := (&crowdgatev1.CreateProjectRequest{Project: validProject()}).ProtoReflect()
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(m, now); err != nil {
			b.Fatal(err)
		}
	}
}
