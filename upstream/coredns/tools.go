//go:build tools

// Package coredns names the CoreDNS command svcnet builds for comparison, so the module's
// requirements cover it.
package coredns

import _ "github.com/coredns/coredns"
