package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// hcLogger hands go-plugin's own log lines to slog at debug level.
//
// Its named children are off: go-plugin names a child to log the plugin's
// stderr, and with a child that is on it parses JSON lines with unchecked
// type assertions (a plugin printing {"@message": 1} would panic the
// server). The plugin's stderr reaches the log through ClientConfig.Stderr
// (lineLogger) instead.
type hcLogger struct {
	log  *slog.Logger
	name string
	off  bool
	args []any
}

func newHCLogger(l *slog.Logger) hclog.Logger { return &hcLogger{log: l} }

func (l *hcLogger) Log(_ hclog.Level, msg string, args ...any) {
	if l.off || !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.log.Debug("go-plugin: "+msg, append(append([]any{}, l.args...), args...)...)
}

func (l *hcLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *hcLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *hcLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *hcLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *hcLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *hcLogger) IsTrace() bool { return false }
func (l *hcLogger) IsDebug() bool { return l.GetLevel() == hclog.Debug }
func (l *hcLogger) IsInfo() bool  { return l.GetLevel() == hclog.Debug }
func (l *hcLogger) IsWarn() bool  { return l.GetLevel() == hclog.Debug }
func (l *hcLogger) IsError() bool { return l.GetLevel() == hclog.Debug }

func (l *hcLogger) ImpliedArgs() []any { return l.args }

func (l *hcLogger) With(args ...any) hclog.Logger {
	c := *l
	c.args = append(append([]any{}, l.args...), args...)
	return &c
}

func (l *hcLogger) Name() string { return l.name }

func (l *hcLogger) Named(name string) hclog.Logger {
	c := *l
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name, c.off = name, true
	return &c
}

func (l *hcLogger) ResetNamed(name string) hclog.Logger { return l.Named(name) }

func (l *hcLogger) SetLevel(hclog.Level) {}

func (l *hcLogger) GetLevel() hclog.Level {
	if l.off || !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return hclog.Off
	}
	return hclog.Debug
}

func (l *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *hcLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &lineLogger{log: l.log, stream: "go-plugin"}
}

// maxLine bounds a logged line; longer ones are logged in pieces.
const maxLine = 64 << 10

// lineLogger logs what the plugin writes to a stream, line by line, with
// the host's attributes (the tenant). Lines are logged at debug level,
// unless a JSON line names its level ("@level" of hclog, "level" of slog),
// capped at warn: tenant code does not raise the server's errors. The
// lines of a Go panic or fatal error are logged at warn.
type lineLogger struct {
	log    *slog.Logger
	stream string

	mu    sync.Mutex
	buf   []byte
	panic bool
}

func newLineLogger(l *slog.Logger, stream string) *lineLogger {
	return &lineLogger{log: l, stream: stream}
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLine {
				w.emit(w.buf)
				w.buf = w.buf[:0]
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.emit(w.buf)
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineLogger) emit(b []byte) {
	line := strings.TrimRight(string(b), "\r")
	if line == "" {
		return
	}
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		w.panic = true
	}
	level := slog.LevelDebug
	switch {
	case w.panic:
		level = slog.LevelWarn
	case line[0] == '{':
		level = jsonLevel(line)
	}
	w.log.Log(context.Background(), level, "validator plugin output", "stream", w.stream, "line", line)
}

// jsonLevel is the level a JSON log line names, capped at warn.
func jsonLevel(line string) slog.Level {
	var v struct {
		HCLevel any `json:"@level"`
		Level   any `json:"level"`
	}
	if json.Unmarshal([]byte(line), &v) != nil {
		return slog.LevelDebug
	}
	name, ok := v.HCLevel.(string)
	if !ok {
		name, _ = v.Level.(string)
	}
	switch strings.ToLower(name) {
	case "info":
		return slog.LevelInfo
	case "warn", "warning", "error", "fatal":
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}
