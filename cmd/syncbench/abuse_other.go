//go:build !linux

package main

import "errors"

var errNoPrlimit = errors.New("setting another process's open-files limit needs Linux (prlimit)")

func setNofile(pid, n int) error { return errNoPrlimit }

func getNofile(pid int) (int, error) { return 0, errNoPrlimit }
