/** Which backend serves a call: `backend` when configured, else nftables when nft is installed. */
import { CniError, ErrorCode } from '../cni/errors.js';
import { dirname } from 'node:path';
import { type Runner, SBIN_DIRS, locate, onPath as onPathDefault, run } from '../host/exec.js';
import type { Backend } from '../backends/backend.js';
import { type BackendName, type PortmapConfig, checkBackendOptions } from '../portmap/config.js';
import { CompositeBackend } from './composite-backend.js';

/** The program each backend runs (its presence on PATH decides the default). */
const PROGRAM: Record<BackendName, string> = { nftables: 'nft', iptables: 'iptables-restore' };

export interface BackendChoice {
  onPath: (program: string) => boolean;
  load: (name: BackendName) => Promise<Backend>;
}

/** `backend` when set; otherwise nftables when nft is installed, else iptables. */
export function chooseBackend(config: Pick<PortmapConfig, 'backend'>, onPath: BackendChoice['onPath'] = onPathDefault): BackendName {
  if (config.backend) return config.backend;
  if (onPath(PROGRAM.nftables)) return 'nftables';
  if (onPath(PROGRAM.iptables)) return 'iptables';
  const installed = locate(PROGRAM.nftables, '', SBIN_DIRS) ?? locate(PROGRAM.iptables, '', SBIN_DIRS);
  throw new CniError(
    ErrorCode.PluginNotAvailable,
    'neither nft nor iptables-restore is on PATH',
    installed
      ? `${installed.file} is installed: add ${dirname(installed.file)} to the PATH the runtime gives CNI plugins`
      : 'install nftables (apt-get install nftables) or iptables, or set PATH for the runtime',
  );
}

/** Loads a backend's module only when a call needs it (the bundle keeps import()ed modules lazy). */
export async function loadBackend(name: BackendName, runner: Runner = run): Promise<Backend> {
  if (name === 'nftables') {
    const { NftablesBackend } = await import('../backends/nftables/backend.js');
    return new NftablesBackend(runner);
  }
  const { IptablesBackend } = await import('../backends/iptables/backend.js');
  return new IptablesBackend(runner);
}

const defaultChoice: BackendChoice = { onPath: onPathDefault, load: (name) => loadBackend(name) };

/**
 * The backend of a call, rejecting options of the other one: the chosen backend, and, without a
 * configured `backend`, the other one (when its program is installed) for DEL and GC to search.
 */
export async function backendFor(config: PortmapConfig, choice: BackendChoice = defaultChoice): Promise<Backend> {
  const name = chooseBackend(config, choice.onPath);
  checkBackendOptions(config, name);
  const primary = await choice.load(name);
  const otherName: BackendName = name === 'nftables' ? 'iptables' : 'nftables';
  const searchOther = !config.backend && choice.onPath(PROGRAM[otherName]);
  return new CompositeBackend(primary, searchOther ? () => choice.load(otherName) : undefined);
}
