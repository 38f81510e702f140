// Command coredns is CoreDNS with its default plugin set, built from the published module.
package main

import (
	_ "github.com/coredns/coredns/core/plugin" // registers every built-in plugin
	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
