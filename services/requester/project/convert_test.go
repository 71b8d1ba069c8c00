package project

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

func TestRedirectURL(t *testing.T) {
	for _, tc := range []struct {
		raw string
		ok  bool
	}{
		{"https://label.example.com/start?x=1", true},
		{"http://localhost:8081/start", true},
		{"http://app.localhost/start", true},
		{"http://127.0.0.1:9000/", true},
		{"http://[::1]:9000/", true},
		{"http://label.example.com/start", false},
		{"http://10.0.0.1/start", false},
		{"https://user:pw@label.example.com/", false},
		{"label.example.com/start", false},
		{"/start", false},
		{"javascript:alert(1)", false},
		{"ftp://label.example.com/", false},
		{"https:///nohost", false},
	} {
		_, err := RedirectURL("project.platform_url", tc.raw, true)
		var ia *serviceerror.InvalidArgument
		switch {
		case tc.ok && err != nil:
			t.Errorf("RedirectURL(%q) = %v, want accepted", tc.raw, err)
		case !tc.ok && (!errors.As(err, &ia) || ia.Field != "project.platform_url"):
			t.Errorf("RedirectURL(%q) = %v, want INVALID_ARGUMENT on project.platform_url", tc.raw, err)
		}
	}
	if u, err := RedirectURL("project.return_url", "", false); u != nil || err != nil {
		t.Errorf("an optional empty URL = %v, %v; want nothing", u, err)
	}
}

func condition(category, key, op string, v *structpb.Value) *crowdgatev1.Filter {
	return &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Condition{Condition: &crowdgatev1.FilterCondition{Category: category, Key: key, Operator: op, Value: v}}}
}

func TestPoolFilter(t *testing.T) {
	lang := condition("profile", "languages", "IN", structpb.NewStringValue("EN"))
	for _, tc := range []struct {
		name string
		reqs *crowdgatev1.TolokerRequirements
		pool *crowdgatev1.Filter
		want string
	}{
		{"nothing", nil, nil, ""},
		{"a pool condition is wrapped in and", nil, lang,
			`{"and":[{"category":"profile","key":"languages","operator":"IN","value":"EN"}]}`},
		{"a pool or is kept", nil, &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Or{Or: &crowdgatev1.FilterList{Filters: []*crowdgatev1.Filter{lang}}}},
			`{"and":[{"or":[{"category":"profile","key":"languages","operator":"IN","value":"EN"}]}]}`},
		{"requirements and a pool and are spliced into one and",
			&crowdgatev1.TolokerRequirements{Countries: []string{"RU"}, AdultAllowed: proto.Bool(false)},
			&crowdgatev1.Filter{Node: &crowdgatev1.Filter_And{And: &crowdgatev1.FilterList{Filters: []*crowdgatev1.Filter{lang, condition("skill", "7", "GTE", structpb.NewNumberValue(80))}}}},
			`{"and":[{"or":[{"category":"profile","key":"country","operator":"EQ","value":"RU"}]},` +
				`{"category":"profile","key":"adult_allowed","operator":"EQ","value":false},` +
				`{"category":"profile","key":"languages","operator":"IN","value":"EN"},` +
				`{"category":"skill","key":"7","operator":"GTE","value":80}]}`},
		{"a null value", nil, condition("skill", "7", "EQ", structpb.NewNullValue()),
			`{"and":[{"category":"skill","key":"7","operator":"EQ","value":null}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PoolFilter(&crowdgatev1.Project{TolokerRequirements: tc.reqs}, "pool.filter", tc.pool, true)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("filter (-want +got):\n%s", diff)
			}
		})
	}

	// One value is compared: an object or a list is refused, naming it.
	for name, v := range map[string]*structpb.Value{
		"object": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewNumberValue(1)}}),
		"list":   structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("EN")}}),
	} {
		_, err := PoolFilter(&crowdgatev1.Project{}, "pool.filter", condition("profile", "languages", "IN", v), true)
		var ia *serviceerror.InvalidArgument
		if !errors.As(err, &ia) || ia.Field != "pool.filter.condition.value" {
			t.Errorf("a condition whose value is an %s: %v, want INVALID_ARGUMENT naming pool.filter.condition.value", name, err)
		}
	}

	var many []*crowdgatev1.Filter
	for range 200 {
		many = append(many, lang)
	}
	_, err := PoolFilter(&crowdgatev1.Project{}, "pool.filter", &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Or{Or: &crowdgatev1.FilterList{Filters: many}}}, true)
	var ia *serviceerror.InvalidArgument
	if !errors.As(err, &ia) || ia.Field != "pool.filter" || !strings.Contains(ia.Reason, "10000") {
		t.Errorf("a filter over Toloka's 10000 characters: %v, want INVALID_ARGUMENT on pool.filter", err)
	}
}

func TestRequirementsAreNormalised(t *testing.T) {
	r := &crowdgatev1.TolokerRequirements{Countries: []string{" ru"}, Languages: []string{"en", "zh-hant"}, ClientTypes: []string{"toloka_app"}}
	if err := normalizeRequirements("project.toloker_requirements", r, true); err != nil {
		t.Fatal(err)
	}
	want := &crowdgatev1.TolokerRequirements{Countries: []string{"RU"}, Languages: []string{"EN", "ZH-HANT"}, ClientTypes: []string{"TOLOKA_APP"}}
	if !proto.Equal(want, r) {
		t.Errorf("normalised = %v, want %v", r, want)
	}
}

// Each filter key takes the operators and the values toloka-api-facts
// ("Filters") and toloka-kit's filter.py give it; anything else is refused
// naming the field, before Toloka is called.
func TestFilterConditionsFollowEachKeysRules(t *testing.T) {
	str, num, null := structpb.NewStringValue, structpb.NewNumberValue, structpb.NewNullValue()
	for _, tc := range []struct {
		name              string
		category, key, op string
		value             *structpb.Value
		wantField         string // "" when accepted
	}{
		{"languages IN", "profile", "languages", "IN", str("EN"), ""},
		{"languages with a script", "profile", "languages", "NOT_IN", str("ZH-HANS"), ""},
		{"languages with EQ", "profile", "languages", "EQ", str("EN"), "operator"},
		{"languages in lower case", "profile", "languages", "IN", str("en"), "value"},
		{"gender EQ", "profile", "gender", "EQ", str("FEMALE"), ""},
		{"gender with GT", "profile", "gender", "GT", str("MALE"), "operator"},
		{"gender not one of its values", "profile", "gender", "EQ", str("ROBOT"), "value"},
		{"country NE", "profile", "country", "NE", str("RU"), ""},
		{"country with IN", "profile", "country", "IN", str("RU"), "operator"},
		{"country not a country code", "profile", "country", "EQ", str("Russia"), "value"},
		{"citizenship EQ", "profile", "citizenship", "EQ", str("DE"), ""},
		{"education EQ", "profile", "education", "EQ", str("HIGH"), ""},
		{"adult_allowed a boolean", "profile", "adult_allowed", "EQ", structpb.NewBoolValue(true), ""},
		{"adult_allowed a string", "profile", "adult_allowed", "EQ", str("yes"), "value"},
		{"verified a boolean", "profile", "verified", "NE", structpb.NewBoolValue(false), ""},
		{"date_of_birth LTE", "profile", "date_of_birth", "LTE", num(946684800), ""},
		{"date_of_birth a word", "profile", "date_of_birth", "GT", str("yesterday"), "value"},
		{"date_of_birth a fraction", "profile", "date_of_birth", "GT", num(1.5), "value"},
		{"city IN a region id", "profile", "city", "IN", num(213), ""},
		{"an unknown profile key", "profile", "rating", "GT", str("high"), "key"},
		{"region_by_ip NOT_IN", "computed", "region_by_ip", "NOT_IN", num(225), ""},
		{"client_type EQ", "computed", "client_type", "EQ", str("TOLOKA_APP"), ""},
		{"device_category EQ", "computed", "device_category", "EQ", str("SMARTPHONE"), ""},
		{"device_category not one of its values", "computed", "device_category", "EQ", str("PHONE"), "value"},
		{"os_family NE", "computed", "os_family", "NE", str("IOS"), ""},
		{"user_agent_type EQ", "computed", "user_agent_type", "EQ", str("MOBILE_BROWSER"), ""},
		{"user_agent_family EQ", "computed", "user_agent_family", "EQ", str("YANDEX_BROWSER"), ""},
		{"os_version a float", "computed", "os_version", "GTE", num(14.4), ""},
		{"os_version_major an int", "computed", "os_version_major", "GTE", num(14), ""},
		{"os_version_major a string", "computed", "os_version_major", "GTE", str("abc"), "value"},
		{"user_agent_version_bugfix a fraction", "computed", "user_agent_version_bugfix", "LT", num(1.5), "value"},
		{"an unknown computed key", "computed", "x", "EQ", null, "key"},
		{"skill GTE", "skill", "1289", "GTE", num(80), ""},
		{"skill EQ null: the Toloker lacks it", "skill", "1289", "EQ", null, ""},
		{"skill NE null", "skill", "1289", "NE", null, "value"},
		{"skill value 150", "skill", "1289", "GT", num(150), "value"},
		{"skill value negative", "skill", "1289", "GT", num(-1), "value"},
		{"skill with IN", "skill", "1289", "IN", num(50), "operator"},
		{"skill value a string", "skill", "1289", "GT", str("80"), "value"},
		{"a null profile value", "profile", "country", "EQ", null, "value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PoolFilter(&crowdgatev1.Project{}, "pool.filter", condition(tc.category, tc.key, tc.op, tc.value), true)
			var ia *serviceerror.InvalidArgument
			switch {
			case tc.wantField == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.wantField == "":
			case !errors.As(err, &ia) || ia.Field != "pool.filter.condition."+tc.wantField:
				t.Errorf("got %v, want INVALID_ARGUMENT naming pool.filter.condition.%s", err, tc.wantField)
			}
		})
	}
}
