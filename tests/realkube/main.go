// Command realkube runs a real Kubernetes control plane (kube-apiserver with
// an embedded etcd, kube-controller-manager, kube-scheduler) on loopback for
// podgate's tests. Only the kubelet is missing: tests bring their own node
// agent. It is a test tool; nothing here is part of podgate itself.
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as the upstream mains load them
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const usage = `usage: realkube COMMAND [FLAGS]

  all [--state-dir DIR] [--port N]   etcd + apiserver + controller-manager + scheduler
                                     in this one process, on 127.0.0.1; writes
                                     DIR/admin.kubeconfig
  apiserver FLAGS...                 kube-apiserver, upstream flags
  controller-manager FLAGS...        kube-controller-manager, upstream flags
  scheduler FLAGS...                 kube-scheduler, upstream flags
  version                            the Kubernetes version built in
  openapi-v2-proto < JSON > PB       OpenAPI v2 JSON to the apiserver's protobuf form
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "all":
		if err := runAll(args); err != nil {
			fmt.Fprintln(os.Stderr, "realkube:", err)
			os.Exit(1)
		}
	case "apiserver":
		c := apiserverapp.NewAPIServerCommand()
		c.SetArgs(args)
		os.Exit(cli.Run(c))
	case "controller-manager":
		c := cmapp.NewControllerManagerCommand()
		c.SetArgs(args)
		os.Exit(cli.Run(c))
	case "scheduler":
		c := schedulerapp.NewSchedulerCommand()
		c.SetArgs(args)
		os.Exit(cli.Run(c))
	case "openapi-v2-proto":
		if err := openAPIV2Proto(); err != nil {
			fmt.Fprintln(os.Stderr, "realkube:", err)
			os.Exit(1)
		}
	case "version":
		fmt.Println(kubeVersion())
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
}
