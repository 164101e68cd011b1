//go:build unix

package kanbanrulesnode_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/syncplane/syncplane/sdk/nodetest"
	"github.com/syncplane/syncplane/sdk/pluginwire"
	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

// wrapper is the executable a tenant manifest points at.
const wrapper = "kanban-rules-node"

var (
	buildOnce sync.Once
	buildErr  error
)

// requireBuilt skips the test without node and npm, and otherwise builds the
// plugin once per test binary: `npm ci` when node_modules does not match
// package.json/package-lock.json, `npm run build` when dist/ does not match
// the sources (see nodetest.Npm).
func requireBuilt(t *testing.T) string {
	t.Helper()
	nodetest.RequireNode(t, "SYNCPLANE_TEST_REQUIRE_NODE", "the Node plugin needs Node.js and npm (CI has them)")
	buildOnce.Do(func() {
		buildErr = nodetest.Npm(context.Background(), ".", nodetest.CI(), nodetest.Step{
			Stamp:  "dist/.syncplane-stamp",
			Inputs: []string{"package.json", "package-lock.json", "tsconfig.json", "src"},
			Output: "dist/main.js",
			Runs:   [][]string{{"run", "build"}},
		})
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	path, err := filepath.Abs(wrapper)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// running is a started plugin.
type running struct {
	client *plugin.Client
	v      validatorv1.ValidatorClient
	broker *plugin.GRPCBroker
	pid    int
}

// start starts the plugin as syncplane's host would, with go-plugin's client
// and the validator handshake; edit adjusts the config.
func start(t *testing.T, edit func(*plugin.ClientConfig)) running {
	t.Helper()
	path := requireBuilt(t)
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  pluginwire.Handshake,
		Plugins:          pluginwire.Map(&pluginwire.Plugin{}),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		SkipHostEnv:      true,
		Cmd:              exec.Command(path),
		StartTimeout:     30 * time.Second,
	}
	if edit != nil {
		edit(cfg)
	}
	client := plugin.NewClient(cfg)
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("start the plugin: %v", err)
	}
	raw, err := rpc.Dispense(pluginwire.Name)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	pc, ok := raw.(*pluginwire.Client)
	if !ok {
		t.Fatalf("dispense gave %T, want *pluginwire.Client", raw)
	}
	return running{client: client, v: pc.Validator, broker: pc.Broker, pid: cfg.Cmd.Process.Pid}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func event(model, op string, payload string) *validatorv1.Event {
	return &validatorv1.Event{Id: model + "-" + op, Model: model, Operation: op, KeyJson: `["k1"]`, PayloadJson: payload, Scope: "u1"}
}

type verdict struct {
	Allow   bool
	Message string
}

func verdicts(res *validatorv1.ValidateResponse) []verdict {
	var out []verdict
	for _, v := range res.GetVerdicts() {
		out = append(out, verdict{v.GetAllow(), v.GetMessage()})
	}
	return out
}

var (
	allow     = verdict{Allow: true}
	longTitle = verdict{Message: "todo title must be at most 200 characters (it has 201)"}
	emptyName = verdict{Message: "board name must not be empty"}
)

func TestValidate(t *testing.T) {
	p := start(t, nil)
	tests := map[string]struct {
		events []*validatorv1.Event
		want   []verdict
	}{
		"todo=long-title": {
			events: []*validatorv1.Event{event("Todo", "create", `{"id":"t1","title":"`+strings.Repeat("x", 201)+`","boardId":"b1"}`)},
			want:   []verdict{longTitle},
		},
		"todo=short-title": {
			events: []*validatorv1.Event{event("Todo", "create", `{"id":"t1","title":"buy milk","boardId":"b1"}`)},
			want:   []verdict{allow},
		},
		"todo=title-of-200-emoji": {
			events: []*validatorv1.Event{event("Todo", "update", `{"id":"t1","title":"`+strings.Repeat("😀", 200)+`","boardId":"b1"}`)},
			want:   []verdict{allow},
		},
		"board=empty-name": {
			events: []*validatorv1.Event{event("Board", "create", `{"id":"b1","name":"","userId":"u1"}`)},
			want:   []verdict{emptyName},
		},
		"board=blank-name": {
			events: []*validatorv1.Event{event("Board", "update", `{"id":"b1","name":"  \t","userId":"u1"}`)},
			want:   []verdict{emptyName},
		},
		"board=named": {
			events: []*validatorv1.Event{event("Board", "create", `{"id":"b1","name":"Inbox","userId":"u1"}`)},
			want:   []verdict{allow},
		},
		"board=delete": {
			events: []*validatorv1.Event{event("Board", "delete", `{"id":"b1","name":"","userId":"u1"}`)},
			want:   []verdict{allow},
		},
		"batch=mixed": {
			events: []*validatorv1.Event{
				event("Board", "create", `{"id":"b1","name":"","userId":"u1"}`),
				event("Board", "create", `{"id":"b2","name":"Work","userId":"u1"}`),
				event("Todo", "create", `{"id":"t1","title":"`+strings.Repeat("é", 201)+`","boardId":"b2"}`),
				event("Todo", "create", `{"id":"t2","title":"ok","boardId":"b2"}`),
				event("User", "update", `{"id":"u1","name":""}`),
			},
			want: []verdict{emptyName, allow, longTitle, allow, allow},
		},
		"batch=empty": {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := p.v.Validate(ctx(t), &validatorv1.ValidateRequest{Tenant: "acme", Subject: "u1", Events: tc.events, CallId: name})
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if diff := cmp.Diff(tc.want, verdicts(res)); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateConcurrent(t *testing.T) {
	p := start(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 190 + i // titles of 190..221 characters
			res, err := p.v.Validate(ctx(t), &validatorv1.ValidateRequest{Events: []*validatorv1.Event{
				event("Todo", "create", fmt.Sprintf(`{"title":%q}`, strings.Repeat("x", n))),
			}})
			if err != nil {
				errs <- err
				return
			}
			if got, want := res.GetVerdicts()[0].GetAllow(), n <= 200; got != want {
				errs <- fmt.Errorf("title of %d: allow=%v, want %v", n, got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A payload that is not a JSON object breaks the contract: the call fails
// with a status (which the host turns into a retryable error), it is not a
// verdict.
func TestValidateBadPayload(t *testing.T) {
	p := start(t, nil)
	_, err := p.v.Validate(ctx(t), &validatorv1.ValidateRequest{Events: []*validatorv1.Event{event("Todo", "create", "not json")}})
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Fatalf("Validate with a bad payload: %v (code %v), want InvalidArgument", err, got)
	}
	// The plugin keeps serving.
	if _, err := p.v.Info(ctx(t), &validatorv1.InfoRequest{}); err != nil {
		t.Fatalf("Info after a bad request: %v", err)
	}
}

func TestInfo(t *testing.T) {
	p := start(t, nil)
	res, err := p.v.Info(ctx(t), &validatorv1.InfoRequest{})
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	pkg, err := os.ReadFile("package.json")
	if err != nil {
		t.Fatal(err)
	}
	if res.GetName() != "kanban-rules-node" || !bytes.Contains(pkg, []byte(`"version": "`+res.GetVersion()+`"`)) || res.GetVersion() == "" {
		t.Errorf("Info = %q %q, want kanban-rules-node and package.json's version", res.GetName(), res.GetVersion())
	}
}

// Kill asks the plugin to stop through go-plugin's GRPCController; the
// process exits at once (without the controller Kill would wait 2 s and then
// kill it).
func TestKill(t *testing.T) {
	p := start(t, nil)
	if err := syscall.Kill(p.pid, 0); err != nil {
		t.Fatalf("plugin process %d not running before Kill: %v", p.pid, err)
	}
	began := time.Now()
	p.client.Kill()
	took := time.Since(began)
	if err := syscall.Kill(p.pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("plugin process %d still there after Kill (signal 0: %v)", p.pid, err)
	}
	if !p.client.Exited() {
		t.Error("client does not report the plugin as exited")
	}
	if took >= 1500*time.Millisecond {
		t.Errorf("Kill took %v: the plugin did not stop on GRPCController.Shutdown", took)
	}
}

// The plugin sees only go-plugin's variables, never the host's.
func TestEnvironment(t *testing.T) {
	t.Setenv("SYNCPLANE_TEST_SECRET", "database-password")
	p := start(t, nil)
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.pid))
	if err != nil {
		t.Skipf("no /proc on this system: %v", err)
	}
	vars := strings.Split(strings.TrimRight(string(env), "\x00"), "\x00")
	for _, v := range vars {
		name, _, _ := strings.Cut(v, "=")
		if name == "SYNCPLANE_TEST_SECRET" {
			t.Errorf("the host's SYNCPLANE_TEST_SECRET reached the plugin")
		}
	}
	if want := pluginwire.Handshake.MagicCookieKey + "=" + pluginwire.Handshake.MagicCookieValue; !contains(vars, want) {
		t.Errorf("plugin environment %q lacks the magic cookie", vars)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// With go-plugin's AutoMTLS the host and the plugin exchange throw-away
// certificates; the plugin serves TLS and announces its certificate in the
// handshake.
func TestAutoMTLS(t *testing.T) {
	p := start(t, func(c *plugin.ClientConfig) { c.AutoMTLS = true })
	res, err := p.v.Validate(ctx(t), &validatorv1.ValidateRequest{Events: []*validatorv1.Event{
		event("Board", "create", `{"name":""}`),
		event("Board", "create", `{"name":"Inbox"}`),
	}})
	if err != nil {
		t.Fatalf("Validate over mTLS: %v", err)
	}
	if diff := cmp.Diff([]verdict{emptyName, allow}, verdicts(res)); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

// The host serves its HostReader to the plugin through go-plugin's broker
// (one persistent service per plugin client). This plugin never reads, but
// the broker stream works as with a Go plugin: the host's AcceptAndServe
// succeeds and Validate calls that carry the reader's id are answered.
func TestHostReaderOffered(t *testing.T) {
	p := start(t, nil)
	id := p.broker.NextId()
	served := make(chan struct{})
	go func() {
		defer close(served)
		p.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			s := grpc.NewServer(opts...)
			validatorv1.RegisterHostReaderServer(s, validatorv1.UnimplementedHostReaderServer{})
			return s
		})
	}()
	res, err := p.v.Validate(ctx(t), &validatorv1.ValidateRequest{ReaderBrokerId: id, CallId: "c1", Events: []*validatorv1.Event{
		event("Todo", "create", `{"title":"ok"}`),
	}})
	if err != nil {
		t.Fatalf("Validate with a reader: %v", err)
	}
	if diff := cmp.Diff([]verdict{allow}, verdicts(res)); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	p.client.Kill()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Error("the host's broker service still serving 5 s after Kill")
	}
}

// Started by hand, without the magic cookie, the plugin explains itself on
// stderr and exits 1 without a handshake.
func TestRefusesToRunWithoutCookie(t *testing.T) {
	path := requireBuilt(t)
	cmd := exec.Command(path)
	cmd.Env = []string{} // no cookie
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("run without cookie: %v, want exit status 1", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing (stdout is the handshake's)", stdout.String())
	}
	if !strings.Contains(stderr.String(), "not meant to be run directly") {
		t.Errorf("stderr = %q, want a message for humans", stderr.String())
	}
}

// The handshake is exactly one line on stdout in go-plugin's format for a
// gRPC plugin on TCP; nothing else is ever written there.
func TestHandshakeLine(t *testing.T) {
	path := requireBuilt(t)
	cmd := exec.Command(path)
	cmd.Env = []string{pluginwire.Handshake.MagicCookieKey + "=" + pluginwire.Handshake.MagicCookieValue}
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first, rest := make(chan string, 1), make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		first <- line
		b, _ := io.ReadAll(r)
		rest <- string(b)
	}()
	select {
	case line := <-first:
		if !regexp.MustCompile(`^1\|1\|tcp\|127\.0\.0\.1:[0-9]+\|grpc\n$`).MatchString(line) {
			t.Errorf("handshake line %q, want 1|1|tcp|127.0.0.1:PORT|grpc", line)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("no handshake line within 20 s")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if more := <-rest; more != "" {
		t.Errorf("stdout after the handshake: %q, want nothing", more)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", err)
	}
}

// The unit tests of the rules and the TLS certificate (src/*.test.ts), run
// with node --test.
func TestNodeUnitTests(t *testing.T) {
	requireBuilt(t)
	out, err := exec.Command("npm", "test").CombinedOutput()
	if err != nil {
		t.Fatalf("npm test: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^# fail 0$`).Match(out) {
		t.Fatalf("npm test reports failures:\n%s", out)
	}
}
