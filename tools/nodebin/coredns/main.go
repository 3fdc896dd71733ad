// CoreDNS with the plugins the real node's Corefile uses and nothing else
// (testbed/nodeconfig.corefile): the cloud DNS plugins' SDKs were most of its build time.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

// In upstream's order (plugin.cfg): the order of a server's plugin chain.
func init() {
	dnsserver.Directives = []string{"health", "errors", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
