package client

import (
	"context"
	"encoding/base64"

	"connectrpc.com/connect"
)

// WithBasicAuth authenticates every call as a cairn user (cairn user
// create) with its password, sent as `Authorization: Basic`, which the
// server checks as SASL PLAIN checks it (cairn serve --http-auth). The
// password crosses the network: use an https:// URL.
func WithBasicAuth(user, password string) Option {
	value := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	return WithConnectOptions(connect.WithInterceptors(authorization(value)))
}

// WithBearerToken authenticates every call with a JWT, sent as
// `Authorization: Bearer`, which the server checks as it checks an
// OAUTHBEARER token (cairn serve --sasl-oauthbearer-*).
func WithBearerToken(token string) Option {
	return WithConnectOptions(connect.WithInterceptors(authorization("Bearer " + token)))
}

// authorization sets the Authorization header of every request.
type authorization string

func (a authorization) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			req.Header().Set("Authorization", string(a))
		}
		return next(ctx, req)
	}
}

func (a authorization) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", string(a))
		return conn
	}
}

func (a authorization) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
