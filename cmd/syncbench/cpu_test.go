package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name may hold spaces and parentheses.
	line := "4242 (post gres) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 30 20 20 0 1 0 100 1000 10 18446744073709551615"
	st, err := parseStat(line)
	want := procStat{comm: "post gres) (x)", ppid: 1, cpu: 3250 * time.Millisecond, children: 500 * time.Millisecond}
	if err != nil || st != want {
		t.Errorf("parseStat = %+v, %v; want %+v (325 ticks = 3.25 s, children 50 ticks)", st, err, want)
	}
	if _, err := parseStat("4242 postgres S 1"); err == nil {
		t.Error("a line without a parenthesized name parsed")
	}
	if _, err := parseStat("4242 (postgres) S 1 2"); err == nil {
		t.Error("a short line parsed")
	}
}

func TestProcCPU(t *testing.T) {
	before, ok := procCPU(os.Getpid())
	if !ok {
		t.Skip("no /proc here")
	}
	for end := time.Now().Add(30 * time.Millisecond); time.Now().Before(end); {
	}
	after, ok := procCPU(os.Getpid())
	if !ok || after <= before {
		t.Errorf("CPU %v then %v (%v) after a busy loop", before, after, ok)
	}
	if _, ok := procCPU(1 << 30); ok {
		t.Error("CPU of a missing process")
	}
	c := cpuReport(cpuSample{server: time.Second, serverOK: true}, cpuSample{server: 3 * time.Second, serverOK: true},
		cpuSample{server: 4 * time.Second, serverOK: true}, 1000, 4000)
	if c.ServerPushMicrosPerEvent != 2000 || c.ServerPullMicrosPerEntry != 250 || c.PostgresPushMicrosPerEvent != 0 {
		t.Errorf("cpuReport = %+v", c)
	}
}
