package toloka

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

// Extra holds the fields of a Toloka object that this package does not
// model, as Toloka sent them. An object read from Toloka and written back
// (Get, change, Update) therefore loses nothing. Modelled fields win over an
// Extra entry of the same name.
type Extra map[string]json.RawMessage

// knownFields caches, per struct type, the JSON names of its fields.
var knownFields sync.Map // reflect.Type -> map[string]bool

func jsonNames(t reflect.Type) map[string]bool {
	if v, ok := knownFields.Load(t); ok {
		return v.(map[string]bool)
	}
	names := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	knownFields.Store(t, names)
	return names
}

// marshalWithExtra marshals v (a struct without MarshalJSON) and adds the
// entries of extra that v does not have.
func marshalWithExtra(v any, extra Extra) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, raw := range extra {
		if _, ok := m[k]; !ok {
			m[k] = raw
		}
	}
	return json.Marshal(m)
}

// unmarshalWithExtra unmarshals b into v (a pointer to a struct without
// UnmarshalJSON) and returns the object's members v has no field for.
func unmarshalWithExtra(b []byte, v any) (Extra, error) {
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	known := jsonNames(reflect.TypeOf(v).Elem())
	var extra Extra
	for k, raw := range m {
		if known[k] {
			continue
		}
		if extra == nil {
			extra = Extra{}
		}
		extra[k] = raw
	}
	return extra, nil
}
