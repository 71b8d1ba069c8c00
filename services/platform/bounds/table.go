package bounds

import "google.golang.org/protobuf/reflect/protoreflect"

// Where the numbers come from.
const (
	srcID       = "an id (Crowdgate's ids are about 30 bytes, Toloka's at most 36)"
	srcToken    = "an enum-like name (a type, scope, operator, source)"
	srcMoney    = "a decimal amount: money.Parse takes at most 12+8 digits"
	srcURL      = "a URL: 2,048 characters, the common practical limit"
	srcPage     = "a page token: base64url of a 6-byte sum and a cursor of at most paging.MaxCursorLength (512) bytes, 691 bytes"
	srcDisplay  = "a display name: credential.MaxDisplayNameLength and access's maxDisplayName, 200 characters"
	srcComment  = "Toloka: a public_comment is at most 2,048 characters (PATCH /assignments, toloka-api-facts.md)"
	srcPrivate  = "Toloka documents no bound; 2,048 characters like its other comments"
	srcBigText  = "a big text (HTML, JavaScript, CSS, their translations): 256 Ki characters; a request is at most 1 MiB anyway"
	srcLanguage = "a language code (ISO 639-1, upper case, maybe with a script: ZH-HANS)"
	srcStruct   = "free-form JSON (google.protobuf.Struct): bounded by the request size and MaxDepth; these stop a flat blow-up"
)

// table holds every per-field bound. A key is either a field's full proto
// name ("crowdgate.v1.Pool.private_name"), for that field only, or a bare
// field name ("page_token"), for every field of that name in any message:
// ids, keys and tokens are bounded the same wherever they appear, in
// messages added later too. A full name wins over a bare one. Fields not
// listed take the package defaults (see the package doc).
var table = map[protoreflect.FullName]Rule{
	// Ids, wherever they appear.
	"assignment_id":          {Bytes: IDBytes, Source: srcID},
	"pool_id":                {Bytes: IDBytes, Source: srcID},
	"project_id":             {Bytes: IDBytes, Source: srcID},
	"session_id":             {Bytes: IDBytes, Source: srcID},
	"submission_id":          {Bytes: IDBytes, Source: srcID},
	"credential_id":          {Bytes: IDBytes, Source: srcID},
	"tenant_id":              {Bytes: IDBytes, Source: srcID},
	"api_key_id":             {Bytes: IDBytes, Source: srcID},
	"user_id":                {Bytes: IDBytes, Source: srcID},
	"toloka_pool_id":         {Bytes: IDBytes, Source: srcID},
	"toloka_project_id":      {Bytes: IDBytes, Source: srcID},
	"training_pool_id":       {Bytes: IDBytes, Source: srcID},
	"skill_id":               {Bytes: IDBytes, Source: srcID},
	"user_skill_id":          {Bytes: IDBytes, Source: srcID},
	"answer_weight_skill_id": {Bytes: IDBytes, Source: srcID},
	"retry_id":               {Bytes: 128, Source: "submission.proto: retry_id is at most 128 characters (submission.MaxRetryIDLength)"},
	"ban_id":                 {Bytes: IDBytes, Source: srcID},
	"assignment_ids":         {Bytes: IDBytes, Items: 100, Source: "review.MaxBatch: a batch review names at most 100 assignments, each an id"},

	// Secrets, codes and page tokens.
	"api_key":    {Bytes: 256, Source: "a Toloka API key or OAuth token (about 40-60 bytes); it becomes an HTTP header to Toloka, so a few hundred bytes at most"},
	"page_token": {Bytes: 1024, Source: srcPage},

	// Events: a cursor is a stream entry id (two 19-digit numbers and a dash).
	"cursor":                                {Bytes: 40, Source: "an event cursor: a Redis stream entry id, at most 39 bytes"},
	"crowdgate.v1.ListEventsRequest.types":  {Bytes: 64, Items: 20, Source: "event types: 11 exist (events.Types), each under 64 bytes"},
	"crowdgate.v1.WatchEventsRequest.types": {Bytes: 64, Items: 20, Source: "as ListEventsRequest.types"},

	// Exports: a cursor is a page token (services/requester/export).
	"crowdgate.v1.ExportSubmissionsRequest.cursor": {Bytes: 1024, Source: srcPage},
	"crowdgate.v1.ExportSessionsRequest.cursor":    {Bytes: 1024, Source: srcPage},
	"crowdgate.v1.ExportTolokersRequest.cursor":    {Bytes: 1024, Source: srcPage},

	"crowdgate.v1.ExchangeCodeRequest.code": {Bytes: 128, Source: "a one-time code is 71 base64url characters (session/codes.go)"},

	// Names and comments, wherever they appear.
	"display_name":          {Chars: 200, Source: srcDisplay},
	"public_comment":        {Chars: 2048, Source: srcComment},
	"private_comment":       {Chars: 2048, Source: srcPrivate},
	"public_description":    {Chars: 2048, Source: "Toloka: a project's public_description is at most 2,048 characters (project.proto, project.MaxPublicDescriptionLength); a pool's the same"},
	"reward_per_assignment": {Bytes: MoneyBytes, Source: srcMoney},

	// Submit (seed 001).
	"crowdgate.v1.SubmitRequest.reward":     {Bytes: MoneyBytes, Source: srcMoney},
	"crowdgate.v1.SubmitRequest.quality":    {Bytes: MoneyBytes, Source: srcMoney},
	"crowdgate.v1.SubmitRequest.custom_log": {Bytes: 64 << 10, Source: "submission.MaxCustomLogBytes: 64 KiB of JSON for antifraud"},
	"crowdgate.v1.SubmitRequest.start_time": {Horizon: Year, Source: "a submit reports work already done: a year of slack for wrong clocks; more is a wrong date"},
	"crowdgate.v1.SubmitRequest.end_time":   {Horizon: Year, Source: "as start_time"},

	// Project (seed 002, seed 001's ptmik_* metadata).
	"crowdgate.v1.Project.public_name":         {Chars: 150, Source: "Toloka: a project's public_name is at most 150 characters (project.proto, project.MaxPublicNameLength)"},
	"crowdgate.v1.Project.public_instructions": {Chars: BigTextChars, Source: srcBigText},
	"crowdgate.v1.Project.platform_url":        {Chars: URLChars, Source: srcURL},
	"crowdgate.v1.Project.platform_audience":   {Chars: URLChars, Source: "a JWT audience, by default the origin of platform_url: as a URL"},
	"crowdgate.v1.Project.return_url":          {Chars: URLChars, Source: srcURL},
	"crowdgate.v1.Project.partner_url":         {Chars: URLChars, Source: srcURL},
	"crowdgate.v1.Project.landing_url":         {Chars: URLChars, Source: srcURL},
	"crowdgate.v1.Project.partner_name":        {Chars: 256, Source: "a name (ptmik_partner_name; seed 001 gives no bound)"},
	"crowdgate.v1.Project.bonus_price_min":     {Bytes: MoneyBytes, Source: srcMoney},
	"crowdgate.v1.Project.bonus_price_max":     {Bytes: MoneyBytes, Source: srcMoney},

	"crowdgate.v1.TolokerRequirements.countries":    {Bytes: 16, Items: 250, Source: "ISO 3166-1 assigns 249 alpha-2 codes"},
	"crowdgate.v1.TolokerRequirements.languages":    {Bytes: 16, Items: 200, Source: "ISO 639-1 assigns 183 codes"},
	"crowdgate.v1.TolokerRequirements.client_types": {Bytes: 32, Items: 10, Source: "Toloka has two client types, BROWSER and TOLOKA_APP"},

	"crowdgate.v1.TaskSpec.input_spec":      {Items: 200, KeyChars: 128, Source: "Toloka documents no bound on task_spec fields; 200 named fields of at most 128 characters"},
	"crowdgate.v1.TaskSpec.output_spec":     {Items: 200, KeyChars: 128, Source: "as input_spec"},
	"crowdgate.v1.FieldSpec.type":           {Bytes: TokenBytes, Source: srcToken},
	"crowdgate.v1.FieldSpec.allowed_values": {Items: 1000, Source: "a classification's labels: 1,000"},
	"crowdgate.v1.ViewSpec.markup":          {Chars: BigTextChars, Source: srcBigText},
	"crowdgate.v1.ViewSpec.script":          {Chars: BigTextChars, Source: srcBigText},
	"crowdgate.v1.ViewSpec.styles":          {Chars: BigTextChars, Source: srcBigText},
	"crowdgate.v1.ViewSpec.type":            {Bytes: TokenBytes, Source: srcToken},
	"crowdgate.v1.ViewAssets.script_urls":   {Chars: URLChars, Items: 50, Source: "script libraries of a task view: 50 URLs"},
	"crowdgate.v1.ViewAssets.style_urls":    {Chars: URLChars, Items: 50, Source: "style sheets of a task view: 50 URLs"},

	"crowdgate.v1.LocalizationConfig.default_language":     {Bytes: 32, Source: srcLanguage},
	"crowdgate.v1.LocalizationConfig.additional_languages": {Items: 200, Source: "one per ISO 639-1 language"},
	"crowdgate.v1.AdditionalLanguage.language":             {Bytes: 32, Source: srcLanguage},
	"crowdgate.v1.LocalizedText.value":                     {Chars: BigTextChars, Source: "a translation of public_name, public_description or public_instructions: as the biggest"},
	"crowdgate.v1.LocalizedText.source":                    {Bytes: TokenBytes, Source: srcToken},

	// Filters (toloka-api-facts.md: a filter's JSON is at most 10,000
	// characters; the project package bounds the nesting at 10 levels).
	"crowdgate.v1.FilterList.filters":       {Items: 200, Source: "Toloka: a filter's JSON is at most 10,000 characters, and a condition takes at least 50"},
	"crowdgate.v1.FilterCondition.category": {Bytes: TokenBytes, Source: srcToken},
	"crowdgate.v1.FilterCondition.key":      {Bytes: IDBytes, Source: "a profile or computed key, or a skill id"},
	"crowdgate.v1.FilterCondition.operator": {Bytes: TokenBytes, Source: srcToken},

	// Pool (seed 003).
	"crowdgate.v1.Pool.private_name": {Chars: 256, Source: "Toloka documents no bound on a pool's private_name; a name"},
	"crowdgate.v1.Pool.will_expire":  {Horizon: 5 * Year, Source: "Toloka documents no bound; a pool that closes more than 5 years from now is a wrong date (the pool package requires it in the future)"},

	"crowdgate.v1.DynamicPricingConfig.type":             {Bytes: TokenBytes, Source: srcToken},
	"crowdgate.v1.DynamicOverlapConfig.type":             {Bytes: TokenBytes, Source: srcToken},
	"crowdgate.v1.DynamicOverlapField.name":              {Chars: 128, Source: "an output field name, as a task_spec key"},
	"crowdgate.v1.TaskDistributionFunction.scope":        {Bytes: TokenBytes, Source: srcToken},
	"crowdgate.v1.TaskDistributionFunction.distribution": {Bytes: TokenBytes, Source: srcToken},

	// Quality control (seed 004).
	"crowdgate.v1.RuleCondition.key":                    {Bytes: TokenBytes, Source: "a collector's key (toloka-api-facts.md lists them all)"},
	"crowdgate.v1.RuleActionParameters.from_field":      {Bytes: TokenBytes, Source: "a rate key of the collector"},
	"crowdgate.v1.RuleActionParameters.private_comment": {Chars: 499, Source: "Toloka: a user restriction's private_comment is at most 499 characters (toloka-api-facts.md)"},

	// Review queue and bans.
	"crowdgate.v1.ListAssignmentsRequest.statuses":  {Items: 6, Source: "Toloka has six assignment statuses (toloka-api-facts.md)"},
	"crowdgate.v1.CreateBanRequest.private_comment": {Chars: 499, Source: "Toloka: a user restriction's private_comment is at most 499 characters (toloka-api-facts.md, ban.MaxCommentLength)"},

	// Webhooks.
	"endpoint_id": {Bytes: IDBytes, Source: srcID},
	"event_id":    {Bytes: IDBytes, Source: srcID},
	"crowdgate.v1.CreateWebhookEndpointRequest.url":         {Chars: URLChars, Source: srcURL},
	"crowdgate.v1.CreateWebhookEndpointRequest.event_types": {Bytes: 64, Items: 20, Source: "as ListEventsRequest.types"},
	"crowdgate.v1.CreateWebhookEndpointRequest.description": {Chars: 512, Source: "webhook.maxDescription: a note of 512 characters"},
	"crowdgate.v1.WebhookEndpoint.url":                      {Chars: URLChars, Source: srcURL},
	"crowdgate.v1.WebhookEndpoint.event_types":              {Bytes: 64, Items: 20, Source: "as ListEventsRequest.types"},
	"crowdgate.v1.WebhookEndpoint.description":              {Chars: 512, Source: "as CreateWebhookEndpointRequest.description"},

	// Well-known types inside requests.
	"google.protobuf.FieldMask.paths":    {Bytes: 256, Items: 100, Source: "an update mask names fields of one message"},
	"google.protobuf.Struct.fields":      {Items: 1000, KeyChars: 256, Source: srcStruct},
	"google.protobuf.ListValue.values":   {Items: 1000, Source: srcStruct},
	"google.protobuf.Value.string_value": {Chars: 64 << 10, Source: srcStruct},
}
