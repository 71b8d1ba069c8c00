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
		{"values of every JSON kind", nil, condition("computed", "x", "EQ", structpb.NewNullValue()),
			`{"and":[{"category":"computed","key":"x","operator":"EQ","value":null}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PoolFilter(&crowdgatev1.Project{TolokerRequirements: tc.reqs}, "pool.filter", tc.pool)
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
		_, err := PoolFilter(&crowdgatev1.Project{}, "pool.filter", condition("profile", "languages", "IN", v))
		var ia *serviceerror.InvalidArgument
		if !errors.As(err, &ia) || ia.Field != "pool.filter.condition.value" {
			t.Errorf("a condition whose value is an %s: %v, want INVALID_ARGUMENT naming pool.filter.condition.value", name, err)
		}
	}

	var many []*crowdgatev1.Filter
	for range 200 {
		many = append(many, lang)
	}
	_, err := PoolFilter(&crowdgatev1.Project{}, "pool.filter", &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Or{Or: &crowdgatev1.FilterList{Filters: many}}})
	var ia *serviceerror.InvalidArgument
	if !errors.As(err, &ia) || ia.Field != "pool.filter" || !strings.Contains(ia.Reason, "10000") {
		t.Errorf("a filter over Toloka's 10000 characters: %v, want INVALID_ARGUMENT on pool.filter", err)
	}
}

func TestRequirementsAreNormalised(t *testing.T) {
	r := &crowdgatev1.TolokerRequirements{Countries: []string{" ru"}, Languages: []string{"en", "zh-hant"}, ClientTypes: []string{"toloka_app"}}
	if err := normalizeRequirements("project.toloker_requirements", r); err != nil {
		t.Fatal(err)
	}
	want := &crowdgatev1.TolokerRequirements{Countries: []string{"RU"}, Languages: []string{"EN", "ZH-HANT"}, ClientTypes: []string{"TOLOKA_APP"}}
	if !proto.Equal(want, r) {
		t.Errorf("normalised = %v, want %v", r, want)
	}
}
