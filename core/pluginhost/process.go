package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/syncplane/syncplane/sdk/pluginwire"
	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

// pluginEnv is the whole environment the plugin gets from the host;
// go-plugin appends its magic cookie and PLUGIN_* variables.
// MALLOC_ARENA_MAX keeps glibc from reserving 64 MB of address space per
// thread, which RLIMIT_AS would not survive (see the package doc).
var pluginEnv = []string{"PATH=/usr/bin:/bin", "MALLOC_ARENA_MAX=2"}

var (
	errChecksum  = errors.New("checksum mismatch")
	errNoPrlimit = errors.New("prlimit(1) from util-linux not found: the plugin's resource limits cannot be applied, so it is not started")
)

// instance is one running plugin process.
type instance struct {
	client    *plugin.Client
	validator validatorv1.ValidatorClient
	broker    *plugin.GRPCBroker
	pid       int
	cancel    context.CancelFunc // SIGKILLs the process group (exec.Cmd.Cancel)

	readerOnce sync.Once
	readerID   uint32        // broker id of the read service; 0 before it is served
	readerDone chan struct{} // closed when the read service stops
}

// launch verifies the executable and starts it under its limits.
func (h *Host) launch() (*instance, error) {
	if !filepath.IsAbs(h.cfg.Command) {
		return nil, fmt.Errorf("command %q is not an absolute path", h.cfg.Command)
	}
	if err := verifyChecksum(h.cfg.Command, h.cfg.SHA256); err != nil {
		return nil, err
	}
	if h.prlimit == "" {
		return nil, errNoPrlimit
	}

	ctx, cancel := context.WithCancel(h.life)
	cmd := exec.CommandContext(ctx, h.prlimit,
		"--as="+strconv.FormatUint(h.cfg.MemoryBytes, 10),
		"--cpu="+strconv.FormatUint(h.cfg.CPUSeconds, 10),
		"--", h.cfg.Command)
	cmd.Env = slices.Clone(pluginEnv)
	cmd.Dir = filepath.Dir(h.cfg.Command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }

	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  pluginwire.Handshake,
		Plugins:          pluginwire.Map(&pluginwire.Plugin{}),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		SkipHostEnv:      true,
		StartTimeout:     startTimeout,
		Logger:           newHCLogger(h.log),
		Stderr:           newLineLogger(h.log, "stderr"),
		SyncStdout:       newLineLogger(h.log, "stdout"),
		SyncStderr:       newLineLogger(h.log, "stderr"),
	})
	fail := func(err error) (*instance, error) {
		cancel()
		client.Kill()
		return nil, err
	}
	rpc, err := client.Client()
	if err != nil {
		// go-plugin's start errors span lines and end in generic hints
		// (about prlimit's file, not the plugin's); keep the first part.
		msg, _, _ := strings.Cut(err.Error(), "This usually means")
		return fail(fmt.Errorf("start: %s", strings.Join(strings.Fields(msg), " ")))
	}
	raw, err := rpc.Dispense(pluginwire.Name)
	if err != nil {
		return fail(fmt.Errorf("dispense: %w", err))
	}
	pc, ok := raw.(*pluginwire.Client)
	if !ok {
		return fail(fmt.Errorf("dispense: unexpected %T", raw))
	}
	return &instance{
		client:    client,
		validator: pc.Validator,
		broker:    pc.Broker,
		pid:       cmd.Process.Pid, // set by Start, before go-plugin's goroutines
		cancel:    cancel,
	}, nil
}

func (i *instance) exited() bool { return i.client.Exited() }

// kill SIGKILLs the process group and waits for go-plugin's goroutines and
// the read service to end.
func (i *instance) kill() {
	i.readerOnce.Do(func() {}) // no read service after this; see serveReader
	i.cancel()
	i.client.Kill()
	if i.readerDone != nil {
		<-i.readerDone
	}
}

// serveReader starts the instance's read service at its first Validate
// call and returns its broker id (0: no service).
func (h *Host) serveReader(inst *instance) uint32 {
	if h.reader == nil {
		return 0
	}
	inst.readerOnce.Do(func() {
		id := inst.broker.NextId()
		done := make(chan struct{})
		srv := &readerServer{h: h}
		go func() {
			defer close(done)
			// Returns when the broker closes (client.Kill).
			inst.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
				s := grpc.NewServer(opts...)
				validatorv1.RegisterHostReaderServer(s, srv)
				return s
			})
		}()
		inst.readerID, inst.readerDone = id, done
	})
	return inst.readerID
}

// killGroup SIGKILLs the process group pgid.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// verifyChecksum compares the sha256 of the file at path with want (hex).
func verifyChecksum(path, want string) error {
	want = strings.ToLower(strings.TrimSpace(want))
	if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("%w: configured sha256 %q is not 64 hex digits", errChecksum, want)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("plugin executable: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("plugin executable: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("plugin executable %s is not a regular file", path)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return fmt.Errorf("plugin executable: %w", err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return fmt.Errorf("%w: %s has sha256 %s, expected %s", errChecksum, path, got, want)
	}
	return nil
}

// findPrlimit returns the path of prlimit(1), or "".
func findPrlimit() string {
	if p, err := exec.LookPath("prlimit"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	for _, p := range []string{"/usr/bin/prlimit", "/bin/prlimit", "/usr/sbin/prlimit"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
