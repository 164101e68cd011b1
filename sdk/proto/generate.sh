#!/usr/bin/env bash
# Regenerates validatorv1/ from validator.proto. Tools: protoc from Debian's
# protobuf-compiler package (3.21), plugins from the Go module proxy:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.10
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
set -euo pipefail
cd "$(dirname "$0")"
protoc --go_out=validatorv1 --go_opt=paths=source_relative \
  --go-grpc_out=validatorv1 --go-grpc_opt=paths=source_relative \
  validator.proto
