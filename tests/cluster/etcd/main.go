// Command etcd is etcd's own server main, built from the published etcd modules.
// etcd's repository uses replace directives between its modules, so `go install` of
// its main package fails; a wrapper module resolves the published versions instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
