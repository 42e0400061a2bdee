package client

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"connectrpc.com/connect"
)

// lostConnection reports a call cut short because its connection died
// (the server was killed mid-reply, a proxy reset the connection) as
// CodeUnavailable, as gRPC does. connect reports a body that ends early as
// CodeUnknown, which callers read as a failure of the call itself; the
// outcome is in fact unknown, and every call this client makes may be
// tried again (appends carry their event ids). Errors the server sent are
// decoded from the wire and never carry these causes.
type lostConnection struct{}

func (lostConnection) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		return res, unavailableIfLost(ctx, err)
	}
}

func (lostConnection) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		return &lostConnStream{StreamingClientConn: next(ctx, spec), ctx: ctx}
	}
}

func (lostConnection) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

type lostConnStream struct {
	connect.StreamingClientConn
	ctx context.Context
}

func (s *lostConnStream) Receive(msg any) error {
	return unavailableIfLost(s.ctx, s.StreamingClientConn.Receive(msg))
}

func (s *lostConnStream) Send(msg any) error {
	return unavailableIfLost(s.ctx, s.StreamingClientConn.Send(msg))
}

// unavailableIfLost turns err into CodeUnavailable when it is connect's
// CodeUnknown (or CodeCanceled: connect says so for some resets while the
// request body is still being written) for a connection that ended or was
// reset, and the caller's context is still live (a cancelled call stays
// cancelled).
func unavailableIfLost(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err // io.EOF alone is the normal end of a stream
	}
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnknown && ce.Code() != connect.CodeCanceled || ctx.Err() != nil {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return connect.NewError(connect.CodeUnavailable, err)
	}
	return err
}
