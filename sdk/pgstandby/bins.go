//go:build linux

package pgstandby

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// debianRoot holds Debian's PostgreSQL installations, one directory per
// major version.
const debianRoot = "/usr/lib/postgresql"

// bins are the paths of the server programs the pair runs.
type bins struct {
	initdb, postgres, basebackup string
}

// findBins finds the server programs in dir, else in $SYNCPLANE_TEST_PG_BIN,
// else in the highest version's directory of debianRoot that has them all.
// Its errors wrap ErrUnavailable.
func findBins(dir string) (bins, error) {
	if dir == "" {
		dir = os.Getenv("SYNCPLANE_TEST_PG_BIN")
	}
	if dir != "" {
		b, err := binsIn(dir)
		if err != nil {
			return bins{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return b, nil
	}
	entries, _ := os.ReadDir(debianRoot)
	var versions []string
	for _, e := range entries {
		versions = append(versions, e.Name())
	}
	// Highest first: "16" before "9.6".
	slices.SortFunc(versions, func(a, b string) int { return compareVersions(b, a) })
	for _, v := range versions {
		if b, err := binsIn(filepath.Join(debianRoot, v, "bin")); err == nil {
			return b, nil
		}
	}
	return bins{}, fmt.Errorf("%w: no %s/<version>/bin with initdb, postgres and pg_basebackup (Debian's postgresql package), and SYNCPLANE_TEST_PG_BIN is not set", ErrUnavailable, debianRoot)
}

// binsIn returns the server programs of dir, or an error naming one that is
// missing or not executable.
func binsIn(dir string) (bins, error) {
	b := bins{
		initdb:     filepath.Join(dir, "initdb"),
		postgres:   filepath.Join(dir, "postgres"),
		basebackup: filepath.Join(dir, "pg_basebackup"),
	}
	for _, path := range []string{b.initdb, b.postgres, b.basebackup} {
		fi, err := os.Stat(path)
		if err != nil {
			return bins{}, err
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return bins{}, fmt.Errorf("%s is not an executable file", path)
		}
	}
	return b, nil
}

// compareVersions compares dotted numeric versions ("15", "9.6"); a part
// that is not a number counts as 0.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}
