package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/eventstore"
)

// The HTTP listener's authentication modes (Config.HTTPAuth).
const (
	HTTPAuthNone     = "none"
	HTTPAuthOptional = "optional"
	HTTPAuthRequired = "required"
)

func (c Config) validateHTTPAuth() error {
	switch c.HTTPAuth {
	case "", HTTPAuthNone:
		if c.HTTPAuthMetrics {
			return errors.New("--http-auth-metrics needs --http-auth optional or required")
		}
	case HTTPAuthOptional, HTTPAuthRequired:
	default:
		return fmt.Errorf("--http-auth %q: want none, optional or required", c.HTTPAuth)
	}
	return nil
}

// eventStorePrefix is the path of every event-store call.
var eventStorePrefix = "/" + eventstorev1connect.EventStoreName + "/"

// withCredentials authenticates HTTP callers with the principals Kafka
// clients have: `Authorization: Basic` is a user's password checked as
// SASL PLAIN checks it (against the user's SCRAM credential), `Bearer` a
// JWT checked as OAUTHBEARER's, both through the Kafka server's SASL
// machinery (its per-address limiter, metric and audit lines). A client
// certificate's principal (withPrincipal, which runs first) counts as
// authenticated too. Bad credentials are refused whatever the mode;
// missing ones only where the mode requires them. The header a caller
// authenticated with goes with its call when the event store forwards it
// to a partition's leader, which authenticates the caller again.
func (s *Server) withCredentials(h http.Handler) http.Handler {
	mode := s.cfg.HTTPAuth
	if mode == "" || mode == HTTPAuthNone {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		if header == "" {
			if mode == HTTPAuthRequired && s.guarded(r.URL.Path) && auth.FromContext(r.Context()).IsAnonymous() {
				s.unauthenticated(w, r, errors.New("authentication required: Authorization Basic or Bearer, or a client certificate"))
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		p, err := s.checkAuthorization(r, header)
		if err != nil {
			s.unauthenticated(w, r, err)
			return
		}
		ctx := eventstore.WithCallerAuthorization(auth.WithPrincipal(r.Context(), p), header)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// guarded reports whether a path needs an authenticated caller under
// HTTPAuthRequired: the event store always, the operators' endpoints
// with HTTPAuthMetrics.
func (s *Server) guarded(path string) bool {
	if strings.HasPrefix(path, eventStorePrefix) {
		return true
	}
	return s.cfg.HTTPAuthMetrics && (path == "/metrics" || path == "/healthz" || strings.HasPrefix(path, "/debug/pprof/"))
}

// checkAuthorization authenticates an Authorization header's credentials.
func (s *Server) checkAuthorization(r *http.Request, header string) (auth.Principal, error) {
	scheme, value, _ := strings.Cut(header, " ")
	switch {
	case strings.EqualFold(scheme, "Basic"):
		user, password, ok := r.BasicAuth()
		if !ok {
			return auth.Principal{}, errors.New("malformed Basic credentials")
		}
		return s.kafka.Authenticate(r.RemoteAddr, sasl.Plain, []byte("\x00"+user+"\x00"+password))
	case strings.EqualFold(scheme, "Bearer"):
		token := strings.TrimSpace(value)
		if token == "" {
			return auth.Principal{}, errors.New("empty Bearer token")
		}
		return s.kafka.Authenticate(r.RemoteAddr, sasl.OAuthBearer, []byte("n,,\x01auth=Bearer "+token+"\x01\x01"))
	}
	return auth.Principal{}, fmt.Errorf("authorization scheme %q: want Basic or Bearer", scheme)
}

// unauthenticated answers 401: an event-store call as the RPC protocol
// it speaks (connect, gRPC) says Unauthenticated, anything else as text.
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("WWW-Authenticate", `Basic realm="cairn", charset="UTF-8"`)
	if strings.HasPrefix(r.URL.Path, eventStorePrefix) {
		if werr := connect.NewErrorWriter().Write(w, r, connect.NewError(connect.CodeUnauthenticated, err)); werr == nil {
			return
		}
	}
	http.Error(w, err.Error(), http.StatusUnauthorized)
}
