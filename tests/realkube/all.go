package main

// `realkube all`: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler in one process. The upstream cobra commands cannot share a
// process (each installs the one signal handler), so this runs each
// component's options -> config -> Run path under one context instead.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

const (
	serviceRange = "10.96.0.0/24"
	serviceIP    = "10.96.0.1"
)

func kubeVersion() string { return version.Get().GitVersion }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func runAll(args []string) error {
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	dir := fs.String("state-dir", "realkube-state", "certificates, tokens, kubeconfigs and etcd data")
	port := fs.Int("port", 6443, "the apiserver's port on 127.0.0.1 (0: any free one)")
	verbosity := fs.String("v", "0", "klog verbosity of the components")
	if err := fs.Parse(args); err != nil {
		return err
	}
	state := stateDir(*dir)
	if err := state.ensure(); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if *port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		*port = p
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", *verbosity)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errs := make(chan error, 4)

	etcd, err := startEtcd(state.path("etcd"))
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()
	go func() {
		if err := <-etcd.Err(); err != nil {
			errs <- fmt.Errorf("etcd: %w", err)
		}
	}()
	etcdURL := etcd.Clients[0].Addr().String()
	// Tests reach etcd itself (its JSON gateway) to force a compaction.
	if err := os.WriteFile(state.path("etcd.url"), []byte("http://"+etcdURL+"\n"), 0o600); err != nil {
		return err
	}

	apiserverDone := make(chan struct{})
	go func() {
		defer close(apiserverDone)
		errs <- wrap("kube-apiserver", runAPIServer(ctx, state, *port, etcdURL))
	}()
	admin, err := state.writeKubeconfig("admin", *port)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, state, *port, errs); err != nil {
		return err
	}
	cmConfig, err := state.writeKubeconfig("controller-manager", *port)
	if err != nil {
		return err
	}
	schedConfig, err := state.writeKubeconfig("scheduler", *port)
	if err != nil {
		return err
	}
	go func() { errs <- wrap("kube-controller-manager", runControllerManager(ctx, state, cmConfig)) }()
	go func() { errs <- wrap("kube-scheduler", runScheduler(ctx, schedConfig)) }()
	fmt.Fprintf(os.Stderr, "realkube: %s ready on https://127.0.0.1:%d, kubeconfig %s\n", kubeVersion(), *port, admin)

	select {
	case <-ctx.Done():
		// The apiserver drains first; etcd (closed by the defer) must outlive it.
		select {
		case <-apiserverDone:
		case <-time.After(20 * time.Second):
		}
		return nil
	case err := <-errs:
		return err
	}
}

func wrap(component string, err error) error {
	if err == nil {
		err = errors.New("stopped")
	}
	return fmt.Errorf("%s: %w", component, err)
}

func startEtcd(dir string) (*embed.Etcd, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
	client := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(clientPort)}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(peerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A test cluster holds little: a small quota and frequent snapshots keep
	// memory flat.
	cfg.QuotaBackendBytes = 512 << 20
	cfg.SnapshotCount = 5000
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("not ready after 60s")
	}
}

// parse applies args to a component's named flag sets.
func parse(name string, sets cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	for _, f := range sets.FlagSets {
		fs.AddFlagSet(f)
	}
	return fs.Parse(args)
}

func runAPIServer(ctx context.Context, state stateDir, port int, etcdAddr string) error {
	s := apiserveroptions.NewServerRunOptions()
	args := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--etcd-servers=http://" + etcdAddr,
		"--tls-cert-file=" + state.path("serving.crt"),
		"--tls-private-key-file=" + state.path("serving.key"),
		"--client-ca-file=" + state.path("ca.crt"),
		"--token-auth-file=" + state.path("tokens.csv"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + state.path("sa.pub"),
		"--service-account-signing-key-file=" + state.path("sa.key"),
		"--service-cluster-ip-range=" + serviceRange,
		"--authorization-mode=Node,RBAC",
		// The default admission plugins (PodSecurity among them) stay on.
		"--allow-privileged=true",
		// Loopback may not be an Endpoints address: no endpoints for the
		// kubernetes Service, instead of a reconciler failing forever.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--cert-dir=" + state.path("apiserver-certs"),
	}
	if err := parse("kube-apiserver", s.Flags(), args); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return errors.Join(errs...)
	}
	return apiserverapp.Run(ctx, completed)
}

func runControllerManager(ctx context.Context, state stateDir, kubeconfig string) error {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	sets := s.Flags(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	s.ParsedFlags = &sets
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + state.path("sa.key"),
		"--root-ca-file=" + state.path("ca.crt"),
		"--cluster-signing-cert-file=" + state.path("ca.crt"),
		"--cluster-signing-key-file=" + state.path("ca.key"),
		"--service-cluster-ip-range=" + serviceRange,
	}
	if err := parse("kube-controller-manager", sets, args); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	c, err := s.Config(ctx, cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	if err != nil {
		return err
	}
	return cmapp.Run(ctx, c.Complete())
}

func runScheduler(ctx context.Context, kubeconfig string) error {
	opts := scheduleroptions.NewOptions()
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
	}
	if err := parse("kube-scheduler", *opts.Flags, args); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cc, sched, err := schedulerapp.Setup(ctx, opts)
	if err != nil {
		return err
	}
	return schedulerapp.Run(ctx, cc, sched)
}

// waitReady polls /readyz with the admin token until the apiserver answers
// ok, fails, or a minute and a half passes.
func waitReady(ctx context.Context, state stateDir, port int, errs <-chan error) error {
	caPEM, err := os.ReadFile(state.path("ca.crt"))
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(state.path("admin.token"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: nil},
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("https://127.0.0.1:%d/readyz", port), nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return errors.New("kube-apiserver: not ready after 90s")
}
