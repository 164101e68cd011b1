package validator

import (
	"io"
	"log/slog"
	"os"
	"sync"
)

// stderr is the process's standard error as it was at start: plugin.Serve
// later replaces os.Stderr with a pipe, but the host reads fd 2.
var stderr = os.Stderr

// logger is the process's one stderr logger, made on first use.
var logger = sync.OnceValue(func() *slog.Logger { return newLogger(stderr) })

// Logger returns the plugin's logger: JSON lines on standard error, which
// the host collects into its own log with the level kept. Standard output
// belongs to the go-plugin handshake: never print to it. Records of every
// level are written; the host filters.
func Logger() *slog.Logger { return logger() }

// hclogTime is the timestamp layout the go-plugin host parses.
const hclogTime = "2006-01-02T15:04:05.000000Z07:00"

// newLogger writes slog JSON with the keys the go-plugin host understands
// (hclog's "@timestamp", "@level", "@message"), so it logs each line at its
// level instead of as an opaque debug line.
func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		AddSource: false,
		Level:     slog.LevelDebug - 4, // hclog's trace: the host filters
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format(hclogTime))
			case slog.LevelKey:
				lvl, _ := a.Value.Any().(slog.Level)
				return slog.String("@level", hclogLevel(lvl))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}

// hclogLevel names an slog level as hclog does.
func hclogLevel(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	default:
		return "error"
	}
}
