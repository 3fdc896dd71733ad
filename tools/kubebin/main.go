// Command kubebin is one multi-call binary holding the upstream Kubernetes control plane
// (kube-apiserver, kube-controller-manager, kube-scheduler), etcd, kubectl and the node agents
// (kubelet, kube-proxy), built from the Go module proxy for the local test cluster (issues 3
// and 13). Linking once saves most of the cold build time; each component still runs as its own
// process: `kubebin apiserver --secure-port=...`.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	_ "time/tzdata" // CronJob time zones, as upstream cmd/kube-controller-manager does.

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream mains do.
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream mains do.
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream mains do.
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// components maps each subcommand to the upstream cobra command it runs.
var components = map[string]func() *cobra.Command{
	"apiserver":          apiserver.NewAPIServerCommand,
	"controller-manager": func() *cobra.Command { return controllermanager.NewControllerManagerCommand() },
	"scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	// The node agents of the real node (issue 13), as upstream cmd/kubelet and cmd/kube-proxy.
	"kubelet": func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
	"proxy":   proxy.NewProxyCommand,
	// kubectl, so the local cluster can be explored as any other (get, explain, apply -k).
	"kubectl": kubectl.NewDefaultKubectlCommand,
}

func main() {
	// Dispatch on the first argument, or on the program name when invoked through a link
	// called kube-apiserver, etcd, and so on.
	name, args := filepath.Base(os.Args[0]), os.Args[1:]
	if len(args) > 0 && (name == "kubebin" || name == "kubebin.exe") {
		name, args = args[0], args[1:]
	}
	switch name {
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
		return
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy":
		name = name[len("kube-"):]
	}
	newCommand, ok := components[name]
	if !ok {
		usage()
		os.Exit(2)
	}
	command := newCommand()
	command.SetArgs(args)
	os.Exit(cli.Run(command))
}

func usage() {
	names := []string{"etcd"}
	for name := range components {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: kubebin {%s} [flags]\n", strings.Join(names, "|"))
}
