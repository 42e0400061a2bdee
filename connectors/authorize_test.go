package connectors_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/connectors"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// With an authorizer, changing connectors needs Alter on the cluster and
// reading them Describe (implied by Alter); a refusal is 403 naming the
// principal and the right. Requests pass the check as the principal their
// context carries; an allowed one goes on to the API (here a 400 for an
// invalid definition, so no database is needed).
func TestHandlerAuthorizes(t *testing.T) {
	s := startAuthorizingServer(t)
	m := connectors.New(s.Cluster(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	alice := auth.Principal{Type: auth.UserType, Name: "alice"}
	h := m.Handler(acl.NewAuthorizer(acl.Config{}))
	as := func(p auth.Principal, method, path, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req = req.WithContext(auth.WithPrincipal(req.Context(), p))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	requests := []struct {
		method, path string
		op           acl.Operation
	}{
		{"GET", "/v1/connectors", acl.OpDescribe},
		{"GET", "/v1/connectors/shop", acl.OpDescribe},
		{"POST", "/v1/connectors", acl.OpAlter},
		{"POST", "/v1/connectors/shop/pause", acl.OpAlter},
		{"POST", "/v1/connectors/shop/resume", acl.OpAlter},
		{"DELETE", "/v1/connectors/shop", acl.OpAlter},
	}
	for _, r := range requests {
		code, body := as(alice, r.method, r.path, "{}")
		if code != http.StatusForbidden || !strings.Contains(body, "User:alice is not allowed "+r.op.String()+" on the cluster") {
			t.Errorf("%s %s without ACLs: %d %s, want 403 naming User:alice and %s", r.method, r.path, code, body, r.op)
		}
	}
	grant(t, s, "User:alice", acl.OpDescribe)
	for _, r := range requests {
		code, body := as(alice, r.method, r.path, "{}")
		if refused := code == http.StatusForbidden; refused != (r.op == acl.OpAlter) {
			t.Errorf("%s %s with Describe: %d %s", r.method, r.path, code, body)
		}
	}
	// Another principal is still refused.
	if code, _ := as(auth.Anonymous, "GET", "/v1/connectors", ""); code != http.StatusForbidden {
		t.Errorf("anonymous list: %d, want 403", code)
	}
	grant(t, s, "User:alice", acl.OpAlter)
	if code, body := as(alice, "POST", "/v1/connectors", "{}"); code != http.StatusBadRequest {
		t.Errorf("create with Alter: %d %s, want 400 for the empty definition", code, body)
	}
}

// Through `cairn serve` with the authorizer on, an anonymous caller is
// refused the connector API until an ACL allows it.
func TestServerConnectorAPIUnderAuthorizer(t *testing.T) {
	s := startAuthorizingServer(t)
	url := "http://" + s.HTTPAddr() + connectors.PathPrefix
	if code := call(t, "GET", url, nil, nil); code != http.StatusForbidden {
		t.Fatalf("anonymous list: %d, want 403", code)
	}
	grant(t, s, auth.Anonymous.String(), acl.OpDescribe)
	var list []connectors.Info
	if code := call(t, "GET", url, nil, &list); code != http.StatusOK {
		t.Fatalf("list with Describe: %d, want 200", code)
	}
	if code := call(t, "POST", url, map[string]string{"name": "x"}, nil); code != http.StatusForbidden {
		t.Fatalf("create with Describe only: %d, want 403", code)
	}
}

func startAuthorizingServer(t *testing.T) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Authorizer = true
	s, err := server.Start(cfg, vfs.NewMem(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func grant(t *testing.T, s *server.Server, principal string, op acl.Operation) {
	t.Helper()
	if err := s.Cluster().CreateACLs([]acl.Binding{{ResourceType: acl.ResourceCluster, ResourceName: acl.ClusterName,
		PatternType: acl.PatternLiteral, Principal: principal, Host: "*", Operation: op, Permission: acl.PermissionAllow}}); err != nil {
		t.Fatal(err)
	}
}
