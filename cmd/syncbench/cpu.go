package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU is the processor time the server, and PostgreSQL where syncbench can
// read it, spent on a run's push and on its pull, per pushed event and per
// pulled entry, in microseconds (the processes' run time from /proc). Unlike
// rates these hold on any machine, however busy. 0 means not measured: the
// server is not syncbench's own (--serve), or not on Linux, or (for
// PostgreSQL) the server runs on SQLite or no postgres process is visible.
type CPU struct {
	ServerPushMicrosPerEvent   float64 `json:"serverPushMicrosPerEvent,omitempty"`
	ServerPullMicrosPerEntry   float64 `json:"serverPullMicrosPerEntry,omitempty"`
	PostgresPushMicrosPerEvent float64 `json:"postgresPushMicrosPerEvent,omitempty"`
	PostgresPullMicrosPerEntry float64 `json:"postgresPullMicrosPerEntry,omitempty"`
}

// cpuSample is the processor time used so far by the server and by every
// postgres process (ok false where it could not be read).
type cpuSample struct {
	server, postgres     time.Duration
	serverOK, postgresOK bool
}

// cpuMeter samples the CPU of the server process pid and, when withPG, of
// the machine's postgres processes.
func cpuMeter(pid int, withPG bool) func() cpuSample {
	return func() cpuSample {
		var s cpuSample
		s.server, s.serverOK = procCPU(pid)
		if withPG {
			s.postgres, s.postgresOK = postgresCPU()
		}
		return s
	}
}

// cpuReport turns samples taken before the push, between push and pull and
// after the pull into the per-event and per-entry figures.
func cpuReport(before, mid, after cpuSample, events, entries int) *CPU {
	per := func(d time.Duration, n int) float64 {
		if n <= 0 || d < 0 {
			return 0
		}
		return float64(d.Microseconds()) / float64(n)
	}
	c := &CPU{}
	if before.serverOK && mid.serverOK && after.serverOK {
		c.ServerPushMicrosPerEvent = per(mid.server-before.server, events)
		c.ServerPullMicrosPerEntry = per(after.server-mid.server, entries)
	}
	if before.postgresOK && mid.postgresOK && after.postgresOK {
		c.PostgresPushMicrosPerEvent = per(mid.postgres-before.postgres, events)
		c.PostgresPullMicrosPerEntry = per(after.postgres-mid.postgres, entries)
	}
	return c
}

// clockTicks is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTicks = 100

// procCPU is the processor time pid has used: the sum of its threads'
// run time in /proc/<pid>/task/*/schedstat (nanoseconds), else user plus
// system time from /proc/<pid>/stat (10 ms ticks).
func procCPU(pid int) (time.Duration, bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	tasks, _ := filepath.Glob(dir + "/task/[0-9]*/schedstat")
	var sum time.Duration
	n := 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		sum += time.Duration(ns)
		n++
	}
	if n > 0 {
		return sum, true
	}
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, false
	}
	st, err := parseStat(string(b))
	return st.cpu, err == nil
}

// procStat is what syncbench reads of one /proc/<pid>/stat line.
type procStat struct {
	comm     string
	ppid     int
	cpu      time.Duration // user plus system time
	children time.Duration // of its exited children that it waited for
}

// parseStat reads one /proc/<pid>/stat line. The name is in parentheses
// and may hold spaces and parentheses itself, so the fields are counted
// from the last ')'.
func parseStat(line string) (procStat, error) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("stat line %.40q: no command name", line)
	}
	f := strings.Fields(line[end+1:])
	// After the name: state (3), ppid (4), … utime (14), stime (15),
	// cutime (16), cstime (17).
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("stat line %.40q: %d fields after the name", line, len(f))
	}
	var n [5]int64
	for i, k := range []int{1, 11, 12, 13, 14} {
		var err error
		if n[i], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("stat line %.40q: field %d %q", line, k+3, f[k])
		}
	}
	tick := func(t int64) time.Duration { return time.Duration(t) * time.Second / clockTicks }
	return procStat{comm: line[open+1 : end], ppid: int(n[0]), cpu: tick(n[1] + n[2]), children: tick(n[3] + n[4])}, nil
}

// postgresCPU sums the processor time of every process named postgres
// that /proc shows (the server's backends, its background workers and the
// postmaster; on a machine of its own, what PostgreSQL spent), plus what
// the postmaster's exited children used (a backend whose connection
// closed between two samples is counted there, in 10 ms ticks, so the sum
// never goes back). ok is false when there is none.
func postgresCPU() (time.Duration, bool) { return postgresTreeCPU(0) }

// postgresTreeCPU is postgresCPU for the cluster whose postmaster is root
// (0: every postgres process of the machine).
func postgresTreeCPU(root int) (time.Duration, bool) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var sum time.Duration
	found := false
	pg := map[int]procStat{}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // it exited meanwhile
		}
		st, err := parseStat(string(b))
		if err != nil || st.comm != "postgres" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if root > 0 && pid != root && st.ppid != root {
			continue
		}
		pg[pid] = st
		if d, ok := procCPU(pid); ok {
			sum += d
			found = true
		}
	}
	for _, st := range pg {
		if _, child := pg[st.ppid]; !child {
			sum += st.children // a postmaster
		}
	}
	return sum, found
}

// ClusterCPU is what one PostgreSQL cluster (a postmaster and its
// processes, --postmaster) spent per pushed event and per pulled entry.
type ClusterCPU struct {
	Postmaster         int     `json:"postmaster"`
	PushMicrosPerEvent float64 `json:"pushMicrosPerEvent"`
	PullMicrosPerEntry float64 `json:"pullMicrosPerEntry"`
}

// clusterMeter samples the clusters of the postmasters pids.
func clusterMeter(pids []int) func() []cpuSample {
	return func() []cpuSample {
		out := make([]cpuSample, len(pids))
		for i, pid := range pids {
			out[i].postgres, out[i].postgresOK = postgresTreeCPU(pid)
		}
		return out
	}
}

// clusterReport is cpuReport for each cluster of clusterMeter.
func clusterReport(pids []int, before, mid, after []cpuSample, events, entries int) []ClusterCPU {
	var out []ClusterCPU
	for i, pid := range pids {
		c := cpuReport(before[i], mid[i], after[i], events, entries)
		out = append(out, ClusterCPU{Postmaster: pid, PushMicrosPerEvent: c.PostgresPushMicrosPerEvent, PullMicrosPerEntry: c.PostgresPullMicrosPerEntry})
	}
	return out
}
