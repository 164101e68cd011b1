package httpapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/syncdata"
)

// apiError is an error with its HTTP status and public message.
type apiError struct {
	status  int
	msg     string
	details []string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, msg string, details ...string) *apiError {
	return &apiError{status: status, msg: msg, details: details}
}

// body is every error response.
type body struct {
	Error   string   `json:"error"`
	Details []string `json:"details,omitempty"`
}

// writeError answers c with err's status and message. Errors that are not
// the client's fault are logged here, once, and answered without internals.
func (s *Server) writeError(c *gin.Context, err error) {
	var (
		ae *apiError
		be *push.BodyError
		re *pull.RequestError
	)
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &be):
		ae = errorf(http.StatusBadRequest, be.Msg, be.Details...)
	case errors.As(err, &re):
		ae = errorf(http.StatusBadRequest, re.Msg)
	case errors.Is(err, pull.ErrForbidden):
		ae = errorf(http.StatusForbidden, err.Error())
	case errors.Is(err, pull.ErrGone):
		ae = errorf(http.StatusGone, err.Error())
	case errors.Is(err, syncdata.ErrTenantMissing):
		// Not the database as a whole: this tenant's tables were dropped
		// under the running server. An operator has to act (a restart, a
		// reload of the tenant or `syncplane migrate` creates them); the
		// tenant works again as soon as they exist.
		s.log.Error("tenant storage missing", "request_id", c.GetString(requestIDKey), "path", c.Request.URL.Path, "err", err)
		c.Header("Retry-After", "30")
		ae = errorf(http.StatusServiceUnavailable, "this tenant's storage is unavailable, retry later")
	case errors.Is(err, syncdata.ErrUnavailable):
		s.log.Warn("storage unavailable", "request_id", c.GetString(requestIDKey), "err", err)
		c.Header("Retry-After", "5")
		ae = errorf(http.StatusServiceUnavailable, "storage unavailable, retry later")
	default:
		s.log.Error("request failed", "request_id", c.GetString(requestIDKey), "path", c.Request.URL.Path, "err", err)
		ae = errorf(http.StatusInternalServerError, "internal error (request id "+c.GetString(requestIDKey)+")")
	}
	c.AbortWithStatusJSON(ae.status, body{Error: ae.msg, Details: ae.details})
}
