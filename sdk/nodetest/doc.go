// Package nodetest holds what syncplane's Go tests of Node.js code share:
// the TypeScript kit's tests (sdk/typescript), the browser end-to-end test
// (sdk/typescript/e2e) and the TypeScript validator plugin's tests
// (plugins/kanban-rules-node). It skips a test without Node.js (or fails it
// when an environment variable requires it), brings a folder's npm packages
// and build up to date once per change of their inputs (hash stamps, a file
// lock against concurrent test binaries), builds ./cmd/syncplane, and runs
// node with a timeout that kills node's whole process group.
//
// It is a plain (not internal) package of sdk/ so that plugins/ may import
// it too; it imports nothing of syncplane's, so the sdk stays free of
// core/. Only tests import it.
package nodetest
