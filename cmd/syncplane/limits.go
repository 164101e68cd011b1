package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server limits: their defaults and how they are checked. Each is a field
// of Config (see there for the file key, variable and flag).
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 30 * time.Second
	defaultWriteTimeout      = 30 * time.Second
	defaultIdleTimeout       = 75 * time.Second
	defaultMaxHeaderBytes    = 64 << 10
	// defaultMaxConns caps the automatic connection limit (maxConns 0),
	// which is otherwise three quarters of the open-file limit.
	defaultMaxConns = 10000
)

// checkLimits fills in the defaults of the server limits left at zero and
// refuses values that make no sense.
func checkLimits(cfg *Config) error {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"readHeaderTimeout", &cfg.ReadHeaderTimeout, defaultReadHeaderTimeout},
		{"readTimeout", &cfg.ReadTimeout, defaultReadTimeout},
		{"writeTimeout", &cfg.WriteTimeout, defaultWriteTimeout},
		{"idleTimeout", &cfg.IdleTimeout, defaultIdleTimeout},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			return fmt.Errorf("config: %s must be positive, got %v", d.name, *d.v)
		}
	}
	if cfg.ReadHeaderTimeout > cfg.ReadTimeout {
		return fmt.Errorf("config: readHeaderTimeout (%v) must not exceed readTimeout (%v)", cfg.ReadHeaderTimeout, cfg.ReadTimeout)
	}
	switch {
	case cfg.MaxHeaderBytes == 0:
		cfg.MaxHeaderBytes = defaultMaxHeaderBytes
	case cfg.MaxHeaderBytes < 4<<10:
		return fmt.Errorf("config: maxHeaderBytes must be at least 4096, got %d", cfg.MaxHeaderBytes)
	}
	if cfg.MaxConns < -1 {
		return fmt.Errorf("config: maxConns must be positive, 0 (automatic) or -1 (no cap), got %d", cfg.MaxConns)
	}
	return nil
}

// connCap is the connection cap of maxConns: itself when positive, none
// for -1, and for 0 three quarters of the process's open-file limit (the
// rest is for the database, SQLite files, plugins and the refusals),
// at most defaultMaxConns.
func connCap(maxConns int) int {
	if maxConns != 0 {
		return maxConns
	}
	n := defaultMaxConns
	if files, ok := openFileLimit(); ok && files*3/4 < uint64(n) {
		n = max(int(files*3/4), 1)
	}
	return n
}

// refusal is what a connection past the cap reads before it is closed:
// an error body like the API's.
var refusal = func() string {
	body := `{"error":"too many connections to this server, retry later"}` + "\n"
	return "HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: application/json; charset=utf-8\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n", len(body)) +
		"\r\n" + body
}()

// maxLingering bounds the refused connections that are drained before
// they are closed; past it they are closed at once.
const maxLingering = 64

// capListener caps the connections an http.Server holds open. Past the
// cap, a new connection first takes the place of the longest-idle
// keep-alive connection, if there is one (idle connections cannot starve
// clients that have something to ask); otherwise it is refused with a
// 503 and Retry-After, and closed. It does not block in Accept like
// netutil.LimitListener: a client waiting in the kernel's backlog would
// learn nothing, and idle connections would hold their places until
// their timeout.
//
// The http.Server must report its connections' states to connState.
type capListener struct {
	net.Listener
	max int

	mu        sync.Mutex
	open      int
	idle      map[*cappedConn]time.Time // since when each idle connection is idle
	lingering int
}

func newCapListener(ln net.Listener, max int) *capListener {
	return &capListener{Listener: ln, max: max, idle: map[*cappedConn]time.Time{}}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		var evict *cappedConn
		if l.open >= l.max {
			evict = l.longestIdle()
		}
		if l.open < l.max || evict != nil {
			l.open++
			l.mu.Unlock()
			if evict != nil {
				evict.Close() // net/http's goroutine for it ends on the error
			}
			return &cappedConn{Conn: c, l: l}, nil
		}
		linger := l.lingering < maxLingering
		if linger {
			l.lingering++
		}
		l.mu.Unlock()
		l.refuse(c, linger)
	}
}

// longestIdle takes the connection idle for longest out of the idle set
// (nil if none is idle). l.mu is held.
func (l *capListener) longestIdle() *cappedConn {
	var oldest *cappedConn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	return oldest
}

// refuse answers c with the refusal and closes it. With linger, it stops
// writing and drains what the client sends for a moment first (in a
// goroutine of its own): closing a socket with unread data resets it, and
// a reset can destroy the answer before the client reads it.
func (l *capListener) refuse(c net.Conn, linger bool) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := c.Write([]byte(refusal))
	tcp, isTCP := c.(*net.TCPConn)
	if !linger || err != nil || !isTCP {
		c.Close()
		if linger {
			l.doneLingering()
		}
		return
	}
	go func() {
		defer l.doneLingering()
		defer c.Close()
		_ = tcp.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 1024)
		for n := 0; n < 64<<10; {
			m, err := c.Read(buf)
			if n += m; err != nil {
				return
			}
		}
	}()
}

func (l *capListener) doneLingering() {
	l.mu.Lock()
	l.lingering--
	l.mu.Unlock()
}

// connState is the http.Server's ConnState hook: it keeps the set of idle
// connections.
func (l *capListener) connState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*cappedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateIdle && !c.closed {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

// cappedConn is a connection counted by its capListener until closed.
type cappedConn struct {
	net.Conn
	l      *capListener
	closed bool // under l.mu
}

func (c *cappedConn) Close() error {
	c.l.mu.Lock()
	if !c.closed {
		c.closed = true
		c.l.open--
		delete(c.l.idle, c)
	}
	c.l.mu.Unlock()
	err := c.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil // evicted, then closed by net/http
	}
	return err
}
