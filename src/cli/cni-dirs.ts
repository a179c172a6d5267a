/** Where runtimes look for CNI plugins and their configuration, by default (libcni, containerd, CRI-O). */
export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';
