package main

import "syscall"

// childProcAttr puts the server in its own process group and has the
// kernel kill it when syncbench dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
