//go:build !unix

package httpapi_test

import "time"

// processCPU is 0 where getrusage is missing: the CPU metric reads 0.
func processCPU() time.Duration { return 0 }
