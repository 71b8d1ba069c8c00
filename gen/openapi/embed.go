// Package openapi embeds the OpenAPI v2 document generated from proto/ (see
// buf.gen.yaml), so the gateway can serve it at /openapi.json. This file is
// the only hand-written file under gen/.
package openapi

import _ "embed"

// JSON is the merged OpenAPI v2 (Swagger) document of Crowdgate's REST API.
//
//go:embed crowdgate.swagger.json
var JSON []byte
