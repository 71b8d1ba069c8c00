package crowdload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// gatewayAPI is the part of Crowdgate's public API the flow uses, over REST
// or gRPC.
type gatewayAPI interface {
	CreateCredential(context.Context, *crowdgatev1.CreateCredentialRequest) (*crowdgatev1.CreateCredentialResponse, error)
	CreateProject(context.Context, *crowdgatev1.CreateProjectRequest) (*crowdgatev1.CreateProjectResponse, error)
	CreatePool(context.Context, *crowdgatev1.CreatePoolRequest) (*crowdgatev1.CreatePoolResponse, error)
	OpenPool(context.Context, *crowdgatev1.OpenPoolRequest) (*crowdgatev1.OpenPoolResponse, error)
	ExchangeCode(context.Context, *crowdgatev1.ExchangeCodeRequest) (*crowdgatev1.ExchangeCodeResponse, error)
	Submit(context.Context, *crowdgatev1.SubmitRequest) (*crowdgatev1.SubmitResponse, error)
	GetPoolTotals(context.Context, *crowdgatev1.GetPoolTotalsRequest) (*crowdgatev1.GetPoolTotalsResponse, error)
	ListTolokers(context.Context, *crowdgatev1.ListTolokersRequest) (*crowdgatev1.ListTolokersResponse, error)
	// The event log and webhooks (--webhook, crowdload webhooks).
	EndSession(context.Context, *crowdgatev1.EndSessionRequest) (*crowdgatev1.EndSessionResponse, error)
	CreateWebhookEndpoint(context.Context, *crowdgatev1.CreateWebhookEndpointRequest) (*crowdgatev1.CreateWebhookEndpointResponse, error)
	ListEvents(context.Context, *crowdgatev1.ListEventsRequest) (*crowdgatev1.ListEventsResponse, error)
	RedeliverWebhookEvents(context.Context, *crowdgatev1.RedeliverWebhookEventsRequest) (*crowdgatev1.RedeliverWebhookEventsResponse, error)
}

// callError is a failed call to the gateway.
type callError struct {
	// Op names the call, for example "Submit".
	Op string
	// Code is the gRPC code (REST: from the error body, or derived from
	// the HTTP status).
	Code codes.Code
	// HTTPStatus is the REST status (0 for gRPC and for no answer).
	HTTPStatus int
	// NoAnswer is set when no answer came (connection refused or reset,
	// timeout): the call may or may not have taken effect.
	NoAnswer bool
	// Message is the server's message or the transport error.
	Message string
}

func (e *callError) Error() string {
	switch {
	case e.NoAnswer:
		return fmt.Sprintf("%s: no answer: %s", e.Op, e.Message)
	case e.HTTPStatus != 0:
		return fmt.Sprintf("%s: HTTP %d %s: %s", e.Op, e.HTTPStatus, e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s: %s", e.Op, e.Code, e.Message)
}

// retryable reports whether a platform must resend the same request:
// no answer, 5xx (other than 501), UNAVAILABLE, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED (429), ABORTED, INTERNAL or UNKNOWN.
func retryable(err error) bool {
	var ce *callError
	if !errors.As(err, &ce) {
		return false
	}
	if ce.NoAnswer {
		return true
	}
	switch ce.Code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown:
		return true
	}
	return false
}

// ErrUnimplemented is wrapped by errors of runs that could not proceed
// because the gateway answered UNIMPLEMENTED (a service not finished yet).
var ErrUnimplemented = errors.New("the gateway answers UNIMPLEMENTED")

// unimplemented reports whether err is an UNIMPLEMENTED answer.
func unimplemented(err error) bool {
	var ce *callError
	return errors.As(err, &ce) && !ce.NoAnswer && ce.Code == codes.Unimplemented
}

// codeFromHTTP maps an HTTP status without a gRPC error body to a code.
func codeFromHTTP(s int) codes.Code {
	switch {
	case s == http.StatusBadRequest:
		return codes.InvalidArgument
	case s == http.StatusUnauthorized:
		return codes.Unauthenticated
	case s == http.StatusForbidden:
		return codes.PermissionDenied
	case s == http.StatusNotFound:
		return codes.NotFound
	case s == http.StatusConflict:
		return codes.Aborted
	case s == http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case s == http.StatusNotImplemented:
		return codes.Unimplemented
	case s == http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case s == http.StatusInternalServerError:
		return codes.Internal
	case s >= 500:
		return codes.Unavailable
	case s >= 400:
		return codes.FailedPrecondition
	}
	return codes.Unknown
}

// restClient calls one replica's REST API.
type restClient struct {
	base string
	hc   *http.Client
}

var (
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

func (c *restClient) call(ctx context.Context, op, method, path string, in, out proto.Message) error {
	var body io.Reader
	if in != nil {
		b, err := marshal.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &callError{Op: op, NoAnswer: true, Message: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &callError{Op: op, NoAnswer: true, Message: "reading the answer: " + err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		ce := &callError{Op: op, HTTPStatus: resp.StatusCode, Code: codeFromHTTP(resp.StatusCode), Message: strings.TrimSpace(string(b))}
		var st struct {
			Code    *int32 `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &st) == nil && st.Code != nil {
			ce.Code, ce.Message = codes.Code(*st.Code), st.Message
		}
		if len(ce.Message) > 300 {
			ce.Message = ce.Message[:300] + "..."
		}
		return ce
	}
	if err := unmarshal.Unmarshal(b, out); err != nil {
		return &callError{Op: op, HTTPStatus: resp.StatusCode, Code: codes.Internal, Message: "undecodable answer: " + err.Error()}
	}
	return nil
}

func (c *restClient) CreateCredential(ctx context.Context, in *crowdgatev1.CreateCredentialRequest) (*crowdgatev1.CreateCredentialResponse, error) {
	out := new(crowdgatev1.CreateCredentialResponse)
	return out, c.call(ctx, "CreateCredential", http.MethodPost, "/v1/credentials", in, out)
}

func (c *restClient) CreateProject(ctx context.Context, in *crowdgatev1.CreateProjectRequest) (*crowdgatev1.CreateProjectResponse, error) {
	out := new(crowdgatev1.CreateProjectResponse)
	return out, c.call(ctx, "CreateProject", http.MethodPost, "/v1/projects", in.GetProject(), out)
}

func (c *restClient) CreatePool(ctx context.Context, in *crowdgatev1.CreatePoolRequest) (*crowdgatev1.CreatePoolResponse, error) {
	out := new(crowdgatev1.CreatePoolResponse)
	return out, c.call(ctx, "CreatePool", http.MethodPost, "/v1/pools", in.GetPool(), out)
}

func (c *restClient) OpenPool(ctx context.Context, in *crowdgatev1.OpenPoolRequest) (*crowdgatev1.OpenPoolResponse, error) {
	out := new(crowdgatev1.OpenPoolResponse)
	return out, c.call(ctx, "OpenPool", http.MethodPost, "/v1/pools/"+url.PathEscape(in.GetPoolId())+"/open", &crowdgatev1.OpenPoolRequest{}, out)
}

func (c *restClient) ExchangeCode(ctx context.Context, in *crowdgatev1.ExchangeCodeRequest) (*crowdgatev1.ExchangeCodeResponse, error) {
	out := new(crowdgatev1.ExchangeCodeResponse)
	return out, c.call(ctx, "ExchangeCode", http.MethodPost, "/v1/sessions:exchange", in, out)
}

func (c *restClient) Submit(ctx context.Context, in *crowdgatev1.SubmitRequest) (*crowdgatev1.SubmitResponse, error) {
	out := new(crowdgatev1.SubmitResponse)
	return out, c.call(ctx, "Submit", http.MethodPost, "/v1/submissions", in, out)
}

func (c *restClient) GetPoolTotals(ctx context.Context, in *crowdgatev1.GetPoolTotalsRequest) (*crowdgatev1.GetPoolTotalsResponse, error) {
	out := new(crowdgatev1.GetPoolTotalsResponse)
	return out, c.call(ctx, "GetPoolTotals", http.MethodGet, "/v1/pools/"+url.PathEscape(in.GetPoolId())+"/totals", nil, out)
}

func (c *restClient) ListTolokers(ctx context.Context, in *crowdgatev1.ListTolokersRequest) (*crowdgatev1.ListTolokersResponse, error) {
	q := url.Values{"pool_id": {in.GetPoolId()}, "page_size": {fmt.Sprint(in.GetPageSize())}}
	if in.GetPageToken() != "" {
		q.Set("page_token", in.GetPageToken())
	}
	out := new(crowdgatev1.ListTolokersResponse)
	return out, c.call(ctx, "ListTolokers", http.MethodGet, "/v1/tolokers?"+q.Encode(), nil, out)
}

func (c *restClient) EndSession(ctx context.Context, in *crowdgatev1.EndSessionRequest) (*crowdgatev1.EndSessionResponse, error) {
	out := new(crowdgatev1.EndSessionResponse)
	return out, c.call(ctx, "EndSession", http.MethodPost, "/v1/sessions/"+url.PathEscape(in.GetSessionId())+"/end", &crowdgatev1.EndSessionRequest{Reason: in.GetReason()}, out)
}

func (c *restClient) CreateWebhookEndpoint(ctx context.Context, in *crowdgatev1.CreateWebhookEndpointRequest) (*crowdgatev1.CreateWebhookEndpointResponse, error) {
	out := new(crowdgatev1.CreateWebhookEndpointResponse)
	return out, c.call(ctx, "CreateWebhookEndpoint", http.MethodPost, "/v1/webhook_endpoints", in, out)
}

func (c *restClient) ListEvents(ctx context.Context, in *crowdgatev1.ListEventsRequest) (*crowdgatev1.ListEventsResponse, error) {
	q := url.Values{}
	for _, t := range in.GetTypes() {
		q.Add("types", t)
	}
	if in.GetCursor() != "" {
		q.Set("cursor", in.GetCursor())
	}
	if in.GetPageSize() != 0 {
		q.Set("page_size", fmt.Sprint(in.GetPageSize()))
	}
	if in.GetPageToken() != "" {
		q.Set("page_token", in.GetPageToken())
	}
	out := new(crowdgatev1.ListEventsResponse)
	return out, c.call(ctx, "ListEvents", http.MethodGet, "/v1/events?"+q.Encode(), nil, out)
}

func (c *restClient) RedeliverWebhookEvents(ctx context.Context, in *crowdgatev1.RedeliverWebhookEventsRequest) (*crowdgatev1.RedeliverWebhookEventsResponse, error) {
	out := new(crowdgatev1.RedeliverWebhookEventsResponse)
	return out, c.call(ctx, "RedeliverWebhookEvents", http.MethodPost, "/v1/webhook_endpoints/"+url.PathEscape(in.GetEndpointId())+":redeliver",
		&crowdgatev1.RedeliverWebhookEventsRequest{StartTime: in.GetStartTime()}, out)
}

// grpcClient calls one replica over gRPC.
type grpcClient struct {
	conn        *grpc.ClientConn
	credentials crowdgatev1.CredentialServiceClient
	projects    crowdgatev1.ProjectServiceClient
	pools       crowdgatev1.PoolServiceClient
	sessions    crowdgatev1.SessionServiceClient
	submissions crowdgatev1.SubmissionServiceClient
	tolokers    crowdgatev1.TolokerServiceClient
	events      crowdgatev1.EventServiceClient
	webhooks    crowdgatev1.WebhookServiceClient
}

func newGRPCClient(addr string) (*grpcClient, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %s: %w", addr, err)
	}
	return &grpcClient{
		conn:        conn,
		credentials: crowdgatev1.NewCredentialServiceClient(conn),
		projects:    crowdgatev1.NewProjectServiceClient(conn),
		pools:       crowdgatev1.NewPoolServiceClient(conn),
		sessions:    crowdgatev1.NewSessionServiceClient(conn),
		submissions: crowdgatev1.NewSubmissionServiceClient(conn),
		tolokers:    crowdgatev1.NewTolokerServiceClient(conn),
		events:      crowdgatev1.NewEventServiceClient(conn),
		webhooks:    crowdgatev1.NewWebhookServiceClient(conn),
	}, nil
}

func (c *grpcClient) close() error { return c.conn.Close() }

// grpcErr converts a gRPC error into a callError.
func grpcErr(op string, err error) error {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err)
	ce := &callError{Op: op, Code: st.Code(), Message: st.Message()}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		// Connection refused or reset, or the attempt timed out: the
		// call may or may not have happened.
		ce.NoAnswer = true
	}
	return ce
}

func call[Req, Resp any](ctx context.Context, op string, f func(context.Context, Req, ...grpc.CallOption) (Resp, error), in Req) (Resp, error) {
	out, err := f(ctx, in)
	return out, grpcErr(op, err)
}

func (c *grpcClient) CreateCredential(ctx context.Context, in *crowdgatev1.CreateCredentialRequest) (*crowdgatev1.CreateCredentialResponse, error) {
	return call(ctx, "CreateCredential", c.credentials.CreateCredential, in)
}

func (c *grpcClient) CreateProject(ctx context.Context, in *crowdgatev1.CreateProjectRequest) (*crowdgatev1.CreateProjectResponse, error) {
	return call(ctx, "CreateProject", c.projects.CreateProject, in)
}

func (c *grpcClient) CreatePool(ctx context.Context, in *crowdgatev1.CreatePoolRequest) (*crowdgatev1.CreatePoolResponse, error) {
	return call(ctx, "CreatePool", c.pools.CreatePool, in)
}

func (c *grpcClient) OpenPool(ctx context.Context, in *crowdgatev1.OpenPoolRequest) (*crowdgatev1.OpenPoolResponse, error) {
	return call(ctx, "OpenPool", c.pools.OpenPool, in)
}

func (c *grpcClient) ExchangeCode(ctx context.Context, in *crowdgatev1.ExchangeCodeRequest) (*crowdgatev1.ExchangeCodeResponse, error) {
	return call(ctx, "ExchangeCode", c.sessions.ExchangeCode, in)
}

func (c *grpcClient) Submit(ctx context.Context, in *crowdgatev1.SubmitRequest) (*crowdgatev1.SubmitResponse, error) {
	return call(ctx, "Submit", c.submissions.Submit, in)
}

func (c *grpcClient) GetPoolTotals(ctx context.Context, in *crowdgatev1.GetPoolTotalsRequest) (*crowdgatev1.GetPoolTotalsResponse, error) {
	return call(ctx, "GetPoolTotals", c.submissions.GetPoolTotals, in)
}

func (c *grpcClient) ListTolokers(ctx context.Context, in *crowdgatev1.ListTolokersRequest) (*crowdgatev1.ListTolokersResponse, error) {
	return call(ctx, "ListTolokers", c.tolokers.ListTolokers, in)
}

func (c *grpcClient) EndSession(ctx context.Context, in *crowdgatev1.EndSessionRequest) (*crowdgatev1.EndSessionResponse, error) {
	return call(ctx, "EndSession", c.sessions.EndSession, in)
}

func (c *grpcClient) CreateWebhookEndpoint(ctx context.Context, in *crowdgatev1.CreateWebhookEndpointRequest) (*crowdgatev1.CreateWebhookEndpointResponse, error) {
	return call(ctx, "CreateWebhookEndpoint", c.webhooks.CreateWebhookEndpoint, in)
}

func (c *grpcClient) ListEvents(ctx context.Context, in *crowdgatev1.ListEventsRequest) (*crowdgatev1.ListEventsResponse, error) {
	return call(ctx, "ListEvents", c.events.ListEvents, in)
}

func (c *grpcClient) RedeliverWebhookEvents(ctx context.Context, in *crowdgatev1.RedeliverWebhookEventsRequest) (*crowdgatev1.RedeliverWebhookEventsResponse, error) {
	return call(ctx, "RedeliverWebhookEvents", c.webhooks.RedeliverWebhookEvents, in)
}

// probe is one RPC the flow needs, called with an empty request: any answer
// but UNIMPLEMENTED means it is there (empty requests are refused as
// invalid, so nothing changes).
type probe struct {
	name string
	call func(context.Context, gatewayAPI) error
}

var probes = []probe{
	{"CredentialService.CreateCredential", func(ctx context.Context, a gatewayAPI) error {
		_, err := a.CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{})
		return err
	}},
	{"ProjectService.CreateProject", func(ctx context.Context, a gatewayAPI) error {
		_, err := a.CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{}})
		return err
	}},
	{"PoolService.CreatePool", func(ctx context.Context, a gatewayAPI) error {
		_, err := a.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{}})
		return err
	}},
	{"PoolService.OpenPool", func(ctx context.Context, a gatewayAPI) error {
		_, err := a.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: "crowdload-probe"})
		return err
	}},
	{"SessionService.ExchangeCode", func(ctx context.Context, a gatewayAPI) error {
		_, err := a.ExchangeCode(ctx, &crowdgatev1.ExchangeCodeRequest{})
		return err
	}},
	{"SubmissionService.Submit", func(ctx context.Context, a gatewayAPI) error {
		_, err := a.Submit(ctx, &crowdgatev1.SubmitRequest{})
		return err
	}},
	{"SubmissionService.GetPoolTotals", func(ctx context.Context, a gatewayAPI) error {
		_, err := a.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: "crowdload-probe"})
		return err
	}},
}
