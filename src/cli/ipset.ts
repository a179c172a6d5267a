/** kube-proxy's ipvs-mode Service ports, from `ipset list <set> -o save` (pure). */
import type { ServicePort } from './iptables.js';

const lines = (text: string | undefined): string[] => (text ?? '').split('\n').map((l) => l.trim()).filter(Boolean);

/** `add KUBE-CLUSTER-IP 10.96.0.10,tcp:53` and `add KUBE-NODE-PORT-TCP 30080` (pure). */
export function parseIpsetSave(text: string): ServicePort[] {
  const out: ServicePort[] = [];
  for (const line of lines(text)) {
    const w = line.split(/\s+/);
    if (w[0] !== 'add') continue;
    const set = w[1] ?? '';
    const member = w[2] ?? '';
    const m = /^([^,]+),(tcp|udp|sctp):(\d+)$/.exec(member);
    if (set === 'KUBE-CLUSTER-IP' && m) {
      out.push({ kind: 'clusterIP', address: m[1]!, protocol: m[2]!, port: Number(m[3]), mode: 'ipvs', source: 'ipset KUBE-CLUSTER-IP', family: m[1]!.includes(':') ? 6 : 4 });
    }
    const np = /^KUBE-NODE-PORT-(TCP|UDP|SCTP)$/.exec(set);
    if (np && /^\d+$/.test(member)) {
      out.push({ kind: 'nodePort', protocol: np[1]!.toLowerCase(), port: Number(member), mode: 'ipvs', source: `ipset ${set}` });
    }
  }
  return out;
}
