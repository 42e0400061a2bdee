package connectors

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
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
// (exists), 421 (another node runs the connectors) or 500.
//
// Mount it at PathPrefix and PathPrefix + "/".
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathPrefix, func(w http.ResponseWriter, r *http.Request) {
		list, err := m.List()
		reply(w, list, err)
	})
	mux.HandleFunc("POST "+PathPrefix, func(w http.ResponseWriter, r *http.Request) {
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
	mux.HandleFunc("GET "+PathPrefix+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		info, err := m.Status(r.PathValue("name"))
		reply(w, info, err)
	})
	mux.HandleFunc("POST "+PathPrefix+"/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
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
	mux.HandleFunc("DELETE "+PathPrefix+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]string{"deleted": r.PathValue("name")}, m.Delete(r.Context(), r.PathValue("name")))
	})
	return mux
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
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": strings.TrimSpace(err.Error())})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
