import { type BackendName, type PortmapConfig, checkBackendOptions } from '../cni/config.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import type { Backend } from '../backends/backend.js';
import { onPath } from '../host/exec.js';

export { onPath };

/** `backend` when set; otherwise nftables when nft is installed, else iptables. */
export function chooseBackend(config: Pick<PortmapConfig, 'backend'>): BackendName {
  if (config.backend) return config.backend;
  if (onPath('nft')) return 'nftables';
  if (onPath('iptables-restore')) return 'iptables';
  throw new CniError(
    ErrorCode.PluginNotAvailable,
    'neither nft nor iptables-restore is on PATH',
    'install nftables (apt-get install nftables) or iptables, or set PATH for the runtime',
  );
}

export async function loadBackend(name: BackendName): Promise<Backend> {
  if (name === 'nftables') {
    const { NftablesBackend } = await import('../backends/nftables/index.js');
    return new NftablesBackend();
  }
  const { IptablesBackend } = await import('../backends/iptables/index.js');
  return new IptablesBackend();
}

/** Picks the backend for a call and rejects options that belong to the other one. */
export async function backendFor(config: PortmapConfig): Promise<Backend> {
  const name = chooseBackend(config);
  checkBackendOptions(config, name);
  return loadBackend(name);
}
