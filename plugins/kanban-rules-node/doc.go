// Package kanbanrulesnode is the folder of kanban-rules-node, an example
// tenant validator plugin written in TypeScript (src/, built with
// `npm ci && npm run build`, started through the kanban-rules-node wrapper
// script). It proves that the validator contract (sdk/proto/validator.proto)
// is language-neutral: the plugin speaks go-plugin's protocol for non-Go
// plugins with the npm registry's gRPC packages. The package holds no Go
// code; its tests build the plugin and run it under go-plugin's client with
// syncplane's handshake (sdk/pluginwire). See README.md.
package kanbanrulesnode
