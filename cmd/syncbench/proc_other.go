//go:build !linux

package main

import "syscall"

// childProcAttr puts the server in its own process group (Pdeathsig is
// Linux only, and so is the RSS sampling from /proc).
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
