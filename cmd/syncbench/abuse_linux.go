package main

import (
	"syscall"
	"unsafe"
)

// setNofile sets the open-files limit (soft and hard) of another process,
// as prlimit(1) --pid does. Lowering needs no privilege; raising a hard
// limit does (CAP_SYS_RESOURCE).
func setNofile(pid, n int) error {
	lim := syscall.Rlimit{Cur: uint64(n), Max: uint64(n)}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_NOFILE),
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// getNofile is another process's soft open-files limit.
func getNofile(pid int) (int, error) {
	var old syscall.Rlimit
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_NOFILE),
		0, uintptr(unsafe.Pointer(&old)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(old.Cur), nil
}
