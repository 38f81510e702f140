// Command cni is the node network agent of the test node image (the default CNI of
// /kind/manifests/default-cni.yaml). On each node it writes a CNI conflist for the
// node's pod CIDR (bridge + host-local + portmap, plugins from the node image) and
// keeps a route to every other node's pod CIDR through that node's InternalIP, so
// pods reach each other across nodes on one Docker network without an overlay.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const resync = 10 * time.Second

func main() {
	nodeName := os.Getenv("NODE_NAME")
	if nodeName == "" {
		log.Fatal("NODE_NAME is not set (use the downward API: spec.nodeName)")
	}
	confPath := envOr("CNI_CONF", "/etc/cni/net.d/10-samestack.conflist")

	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster config: %v", err)
	}
	// Before kube-proxy programs the service IP, the API server is only reachable directly.
	if ep := os.Getenv("CONTROL_PLANE_ENDPOINT"); ep != "" {
		cfg.Host = "https://" + ep
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("client: %v", err)
	}

	for {
		if err := syncOnce(context.Background(), client, nodeName, confPath); err != nil {
			log.Printf("sync: %v", err)
		}
		time.Sleep(resync)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// syncOnce writes this node's conflist and routes to the other nodes' pod CIDRs.
func syncOnce(ctx context.Context, client kubernetes.Interface, nodeName, confPath string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		node := &nodes.Items[i]
		if node.Spec.PodCIDR == "" {
			continue
		}
		if node.Name == nodeName {
			if err := writeConf(confPath, node.Spec.PodCIDR); err != nil {
				return err
			}
			continue
		}
		if err := routeTo(node); err != nil {
			log.Printf("route to %s: %v", node.Name, err)
		}
	}
	return nil
}

// writeConf writes the conflist atomically, and only when it changes, so the
// container runtime never reads a half-written file.
func writeConf(path, podCIDR string) error {
	ipam := map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": podCIDR}}},
		"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
	}
	bridge := map[string]any{
		"type":        "bridge",
		"bridge":      "cni0",
		"isGateway":   true,
		"hairpinMode": true,
		// Masquerade traffic leaving the node's pod CIDR: replies from other nodes and
		// from outside then find their way back without per-pod routes elsewhere.
		"ipMasq": true,
		"ipam":   ipam,
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "samestack",
		"plugins": []map[string]any{
			bridge,
			{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	log.Printf("wrote %s for pod CIDR %s", path, podCIDR)
	return nil
}

// routeTo points the node's pod CIDR at its InternalIP (all nodes share one L2 network).
func routeTo(node *corev1.Node) error {
	var gw net.IP
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil {
				gw = ip
				break
			}
		}
	}
	if gw == nil {
		return fmt.Errorf("no IPv4 InternalIP")
	}
	_, dst, err := net.ParseCIDR(node.Spec.PodCIDR)
	if err != nil {
		return err
	}
	return netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: gw})
}
