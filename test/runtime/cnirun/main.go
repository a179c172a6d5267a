// cnirun is a minimal container runtime built on the real libcni (Debian's
// golang-github-appc-cni-dev): it runs a conflist's ADD, CHECK or DEL the way
// containerd and CRI-O do, including capability args (portMappings) and the
// result cache that feeds prevResult to CHECK and DEL.
//
//	cnirun add|check|del <conflist> <netns-path>
//
// Environment: CNI_PATH, CONTAINER_ID, IFNAME (default eth0), CAP_ARGS (JSON
// capability args, e.g. {"portMappings":[...]}), CAP_ARGS_FILE (the same read
// from a file: thousands of mappings do not fit in one environment variable,
// which Linux caps at 128 KiB), RUNTIME_ARGS (the runtime's CNI_ARGS pairs,
// "K=V;K=V", as containerd and CRI-O pass K8S_POD_NAMESPACE and K8S_POD_NAME),
// CNI_CACHE_DIR.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: cnirun add|check|del <conflist> <netns-path>")
		os.Exit(2)
	}
	list, err := libcni.ConfListFromFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir := os.Getenv("CNI_CACHE_DIR")
	cfg := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cacheDir, nil)
	ifname := os.Getenv("IFNAME")
	if ifname == "" {
		ifname = "eth0"
	}
	rt := &libcni.RuntimeConf{ContainerID: os.Getenv("CONTAINER_ID"), NetNS: os.Args[3], IfName: ifname, CacheDir: cacheDir}
	if args := os.Getenv("RUNTIME_ARGS"); args != "" {
		for _, pair := range strings.Split(args, ";") {
			k, v, _ := strings.Cut(pair, "=")
			rt.Args = append(rt.Args, [2]string{k, v})
		}
	}
	caps := os.Getenv("CAP_ARGS")
	if file := os.Getenv("CAP_ARGS_FILE"); file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "CAP_ARGS_FILE:", err)
			os.Exit(2)
		}
		caps = string(data)
	}
	if caps != "" {
		if err := json.Unmarshal([]byte(caps), &rt.CapabilityArgs); err != nil {
			fmt.Fprintln(os.Stderr, "CAP_ARGS:", err)
			os.Exit(2)
		}
	}
	ctx := context.Background()
	switch os.Args[1] {
	case "add":
		var r interface{ Print() error }
		r, err = cfg.AddNetworkList(ctx, list, rt)
		if err == nil {
			err = r.Print()
		}
	case "check":
		err = cfg.CheckNetworkList(ctx, list, rt)
	case "del":
		err = cfg.DelNetworkList(ctx, list, rt)
	default:
		err = fmt.Errorf("unknown verb %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
