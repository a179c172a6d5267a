import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Backend, ForwardRow } from '../backend.js';

/** Placeholder until the iptables backend lands. */
export class IptablesBackend implements Backend {
  readonly name = 'iptables' as const;
  private fail(): never {
    throw new CniError(ErrorCode.PluginNotAvailable, 'the iptables backend is not available in this build', 'use "backend": "nftables"');
  }
  async add(): Promise<void> {
    this.fail();
  }
  async del(): Promise<void> {
    this.fail();
  }
  async check(): Promise<void> {
    this.fail();
  }
  async gc(): Promise<void> {
    this.fail();
  }
  async status(): Promise<void> {
    this.fail();
  }
  async list(): Promise<ForwardRow[]> {
    return [];
  }
}
