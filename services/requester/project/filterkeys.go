package project

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// The operators of a filter condition, grouped as toloka-api-facts
// ("Filters") and toloka-kit's filter.py group them by key.
var (
	identityOps  = []string{"EQ", "NE"}
	inclusionOps = []string{"IN", "NOT_IN"}
	compareOps   = []string{"EQ", "NE", "GT", "GTE", "LT", "LTE"}
)

// filterKey is what one profile or computed key takes: its operators and
// a check of its value (a message saying what the value must be, or "").
type filterKey struct {
	ops   []string
	value func(*structpb.Value) string
}

// filterKeys are the documented keys of the profile and computed
// categories. A skill condition's key is a skill id instead (skillValue).
var filterKeys = map[string]map[string]filterKey{
	"profile": {
		"gender":        {identityOps, enumValue("MALE", "FEMALE")},
		"country":       {identityOps, patternValue(countryCode.MatchString, "an ISO 3166-1 alpha-2 country code such as RU")},
		"citizenship":   {identityOps, patternValue(countryCode.MatchString, "an ISO 3166-1 alpha-2 country code such as RU")},
		"education":     {identityOps, enumValue("BASIC", "MIDDLE", "HIGH")},
		"adult_allowed": {identityOps, boolValue},
		"verified":      {identityOps, boolValue},
		"date_of_birth": {compareOps, intValue("a unix time in seconds")},
		"city":          {inclusionOps, intValue("a region id")},
		"languages":     {inclusionOps, patternValue(languageCode.MatchString, "an upper-case ISO 639-1 language code such as EN")},
	},
	"computed": {
		"region_by_phone":           {inclusionOps, intValue("a region id")},
		"region_by_ip":              {inclusionOps, intValue("a region id")},
		"client_type":               {identityOps, enumValue(clientTypes...)},
		"device_category":           {identityOps, enumValue("PERSONAL_COMPUTER", "SMARTPHONE", "TABLET", "WEARABLE_COMPUTER")},
		"os_family":                 {identityOps, enumValue("WINDOWS", "OS_X", "MAC_OS", "LINUX", "BSD", "ANDROID", "IOS", "BLACKBERRY")},
		"user_agent_type":           {identityOps, enumValue("BROWSER", "MOBILE_BROWSER", "OTHER")},
		"user_agent_family":         {identityOps, enumValue("IE", "CHROMIUM", "CHROME", "FIREFOX", "SAFARI", "YANDEX_BROWSER", "IE_MOBILE", "CHROME_MOBILE", "MOBILE_FIREFOX", "MOBILE_SAFARI")},
		"os_version":                {compareOps, numberValue},
		"os_version_major":          {compareOps, intValue("a whole version number")},
		"os_version_minor":          {compareOps, intValue("a whole version number")},
		"os_version_bugfix":         {compareOps, intValue("a whole version number")},
		"user_agent_version":        {compareOps, numberValue},
		"user_agent_version_major":  {compareOps, intValue("a whole version number")},
		"user_agent_version_minor":  {compareOps, intValue("a whole version number")},
		"user_agent_version_bugfix": {compareOps, intValue("a whole version number")},
	},
}

// checkConditionKey checks a condition's key, operator and value against
// the rules of its category and key. It returns the field at fault
// ("key", "operator" or "value") and why, or "" when the condition holds.
func checkConditionKey(category, key, op string, v *structpb.Value) (field, why string) {
	if category == "skill" {
		if !slices.Contains(compareOps, op) {
			return "operator", "a skill condition takes " + strings.Join(compareOps, ", ") + ", got " + strconv.Quote(op)
		}
		if why := skillValue(op, v); why != "" {
			return "value", why
		}
		return "", ""
	}
	k, ok := filterKeys[category][key]
	if !ok {
		return "key", "a " + category + " condition's key is one of " + strings.Join(slices.Sorted(maps.Keys(filterKeys[category])), ", ") + ", got " + strconv.Quote(key)
	}
	if !slices.Contains(k.ops, op) {
		return "operator", category + "." + key + " takes " + strings.Join(k.ops, ", ") + ", got " + strconv.Quote(op)
	}
	if why := k.value(v); why != "" {
		return "value", category + "." + key + " must be " + why
	}
	return "", ""
}

// skillValue checks a skill condition's value: a number from 0 to 100, or
// null with EQ (the Toloker lacks the skill).
func skillValue(op string, v *structpb.Value) string {
	switch x := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		if op == "EQ" {
			return ""
		}
		return "a skill value is null only with EQ (the Toloker lacks the skill)"
	case *structpb.Value_NumberValue:
		if x.NumberValue >= 0 && x.NumberValue <= 100 {
			return ""
		}
	}
	return "a skill value is a number from 0 to 100 (or null with EQ)"
}

func enumValue(values ...string) func(*structpb.Value) string {
	return func(v *structpb.Value) string {
		if s, ok := v.GetKind().(*structpb.Value_StringValue); ok && slices.Contains(values, s.StringValue) {
			return ""
		}
		return "one of " + strings.Join(values, ", ")
	}
}

func patternValue(match func(string) bool, what string) func(*structpb.Value) string {
	return func(v *structpb.Value) string {
		if s, ok := v.GetKind().(*structpb.Value_StringValue); ok && match(s.StringValue) {
			return ""
		}
		return what
	}
}

func boolValue(v *structpb.Value) string {
	if _, ok := v.GetKind().(*structpb.Value_BoolValue); ok {
		return ""
	}
	return "true or false"
}

func numberValue(v *structpb.Value) string {
	if _, ok := v.GetKind().(*structpb.Value_NumberValue); ok {
		return ""
	}
	return "a number"
}

func intValue(what string) func(*structpb.Value) string {
	return func(v *structpb.Value) string {
		if n, ok := v.GetKind().(*structpb.Value_NumberValue); ok && n.NumberValue == math.Trunc(n.NumberValue) && math.Abs(n.NumberValue) < 1<<53 {
			return ""
		}
		return what + " (a whole number)"
	}
}
