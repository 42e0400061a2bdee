package connectors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth"
)

// requestBytesMax bounds a request body (a definition).
const requestBytesMax = 64 << 10

// PathPrefix is where the API is mounted.
const PathPrefix = "/v1/connectors"

// Handler serves the connector API, JSON in and out:
//
//	GET    /v1/connectors              list: [Info]
//	POST   /v1/connectors              create: Definition → Info
//	GET    /v1/connectors/NAME         status: Info
//	POST   /v1/connectors/NAME/pause   pause: Info
//	POST   /v1/connectors/NAME/resume  resume: Info
//	DELETE /v1/connectors/NAME         delete
//
// Errors are {"error": "..."} with 400 (invalid), 404 (not found), 409
// (exists), 421 (another node runs the connectors), 403 (refused by the
// authorizer) or 500.
//
// With a non-nil authorizer, each request checks the principal of its
// context (auth.FromContext) against the cluster's ACLs: changing a
// connector (create, pause, resume, delete) needs Alter on the cluster, as
// Kafka's own cluster-wide settings do, since a connector writes topics with
// the server's rights and holds a database's credentials; list and status
// need Describe on the cluster (implied by Alter).
//
// Mount it at PathPrefix and PathPrefix + "/".
func (m *Manager) Handler(a *acl.Authorizer) http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, op acl.Operation, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := m.authorize(a, r, op); err != nil {
				reply(w, nil, err)
				return
			}
			h(w, r)
		})
	}
	handle("GET "+PathPrefix, acl.OpDescribe, func(w http.ResponseWriter, r *http.Request) {
		list, err := m.List()
		reply(w, list, err)
	})
	handle("POST "+PathPrefix, acl.OpAlter, func(w http.ResponseWriter, r *http.Request) {
		var d Definition
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, requestBytesMax))
		if err == nil {
			err = json.Unmarshal(body, &d)
		}
		if err != nil {
			reply(w, nil, errors.Join(ErrInvalid, err))
			return
		}
		if err := m.Create(r.Context(), d); err != nil {
			reply(w, nil, err)
			return
		}
		info, err := m.Status(d.Name)
		reply(w, info, err)
	})
	handle("GET "+PathPrefix+"/{name}", acl.OpDescribe, func(w http.ResponseWriter, r *http.Request) {
		info, err := m.Status(r.PathValue("name"))
		reply(w, info, err)
	})
	handle("POST "+PathPrefix+"/{name}/{action}", acl.OpAlter, func(w http.ResponseWriter, r *http.Request) {
		name, action := r.PathValue("name"), r.PathValue("action")
		if action != "pause" && action != "resume" {
			http.NotFound(w, r)
			return
		}
		if err := m.SetPaused(r.Context(), name, action == "pause"); err != nil {
			reply(w, nil, err)
			return
		}
		info, err := m.Status(name)
		reply(w, info, err)
	})
	handle("DELETE "+PathPrefix+"/{name}", acl.OpAlter, func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]string{"deleted": r.PathValue("name")}, m.Delete(r.Context(), r.PathValue("name")))
	})
	return mux
}

// authorize refuses with ErrForbidden a request whose principal may not
// perform op on the cluster; nil without an authorizer.
func (m *Manager) authorize(a *acl.Authorizer, r *http.Request, op acl.Operation) error {
	if a == nil {
		return nil
	}
	who := auth.FromContext(r.Context())
	req := acl.Request{Principal: who, Host: acl.HostOf(r.RemoteAddr), Operation: op,
		ResourceType: acl.ResourceCluster, ResourceName: acl.ClusterName}
	if a.Authorize(m.c.ACLs(), req) {
		return nil
	}
	return fmt.Errorf("%w: %s is not allowed %s on the cluster, which %s %s needs: grant it with cairn acl add",
		ErrForbidden, who, op, r.Method, r.URL.Path)
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrInvalid):
			code = http.StatusBadRequest
		case errors.Is(err, ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, ErrExists):
			code = http.StatusConflict
		case errors.Is(err, ErrNotLeader):
			code = http.StatusMisdirectedRequest
		case errors.Is(err, ErrForbidden):
			code = http.StatusForbidden
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": strings.TrimSpace(err.Error())})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
