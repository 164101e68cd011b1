package httpapi

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDoc is the OpenAPI 3.1 description of the public and the admin
// API (openapi.json beside this file). Tests validate real requests and
// responses against it (openapi_test.go): change it with the routes.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.1 document (JSON) that GET /openapi.json
// serves. The caller must not modify it.
func OpenAPI() []byte { return openAPIDoc }

// ServeOpenAPI writes the OpenAPI document, for a handler of another
// router (the admin API serves it too).
func ServeOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPIDoc)
}

func (s *Server) openAPI(c *gin.Context) {
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/json", openAPIDoc)
}

// Routes lists the method and path of every route the API router
// registered (gin's syntax: ":tenant"), for tests that check each one is
// documented.
func (s *Server) Routes() [][2]string {
	var out [][2]string
	for _, r := range s.engine.Routes() {
		out = append(out, [2]string{r.Method, r.Path})
	}
	return out
}
