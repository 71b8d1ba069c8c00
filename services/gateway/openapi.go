package gateway

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/crowdgate/crowdgate/gen/openapi"
)

// operationsOpenAPI describes the routes the gateway serves beside the REST
// API (the landing, the JWKS, health, metrics and the document itself),
// which have no RPC for protoc-gen-openapiv2 to describe.
//
//go:embed openapi_operations.json
var operationsOpenAPI []byte

// openAPIDocument is the document GET /openapi.json serves: the one
// generated from the protos (gen/openapi) with the operations routes, and
// the host and scheme of the public URL, so tools call the right server.
func openAPIDocument(publicURL string) ([]byte, error) {
	var doc, ops map[string]any
	if err := decodeJSON(openapi.JSON, &doc); err != nil {
		return nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	if err := decodeJSON(operationsOpenAPI, &ops); err != nil {
		return nil, fmt.Errorf("OpenAPI operations: %w", err)
	}
	for _, section := range []string{"paths", "definitions"} {
		dst, _ := doc[section].(map[string]any)
		if dst == nil {
			dst = map[string]any{}
			doc[section] = dst
		}
		src, _ := ops[section].(map[string]any)
		for k, v := range src {
			if _, taken := dst[k]; taken {
				return nil, fmt.Errorf("OpenAPI operations: %s %s is in the generated document already", section, k)
			}
			dst[k] = v
		}
	}
	tags, _ := doc["tags"].([]any)
	opsTags, _ := ops["tags"].([]any)
	doc["tags"] = append(tags, opsTags...)
	if u, err := url.Parse(publicURL); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		doc["host"] = u.Host
		doc["schemes"] = []string{u.Scheme}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// decodeJSON decodes keeping numbers as written.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
