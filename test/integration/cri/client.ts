/**
 * A minimal CRI client: the pod sandbox calls of `runtime.v1.RuntimeService` that a kubelet makes around
 * a pod's network, over containerd's gRPC socket, with @grpc/grpc-js and the api.proto subset beside
 * this file (loaded at run time by @grpc/proto-loader: no generated code, no protoc).
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = join(import.meta.dirname, 'api.proto');

export type CriProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface CriPortMapping {
  protocol: CriProtocol;
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

export interface PodSpec {
  name: string;
  uid: string;
  namespace: string;
  portMappings: CriPortMapping[];
  /** LinuxPodSandboxConfig.cgroup_parent (cgroupfs syntax). */
  cgroupParent?: string;
}

export interface SandboxStatus {
  id: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  ip: string;
  additionalIps: string[];
  /** The pod's network namespace (a bind mount containerd made), from the verbose info's runtime spec. */
  netnsPath: string | undefined;
}

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type Method = (req: unknown, opts: grpc.CallOptions, cb: Callback) => void;

interface RawStatus {
  status?: { id: string; state: SandboxStatus['state']; network?: { ip: string; additionalIps?: Array<{ ip: string }> } };
  info?: Record<string, string>;
}

interface Info {
  runtimeSpec?: { linux?: { namespaces?: Array<{ type: string; path?: string }> } };
}

let definition: protoLoader.PackageDefinition | undefined;

export class CriClient {
  private readonly client: grpc.Client;

  constructor(socket: string) {
    definition ??= protoLoader.loadSync(PROTO, { keepCase: false, longs: String, enums: String, defaults: true });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } } };
    this.client = new pkg.runtime.v1.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  private call<T>(name: string, req: unknown, timeoutMs = 60_000): Promise<T> {
    const method = (this.client as unknown as Record<string, Method>)[name]!.bind(this.client);
    return new Promise((ok, fail) => {
      method(req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? fail(new Error(`CRI ${name}: ${err.message}`, { cause: err })) : ok(res as T)));
    });
  }

  version(timeoutMs?: number): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call('Version', {}, timeoutMs);
  }

  async runPodSandbox(pod: PodSpec, timeoutMs?: number): Promise<string> {
    const config = {
      metadata: { name: pod.name, uid: pod.uid, namespace: pod.namespace, attempt: 0 },
      hostname: pod.name,
      portMappings: pod.portMappings.map((m) => ({ ...m, hostIp: m.hostIp ?? '' })),
      linux: { cgroupParent: pod.cgroupParent ?? '' },
    };
    return (await this.call<{ podSandboxId: string }>('RunPodSandbox', { config, runtimeHandler: '' }, timeoutMs)).podSandboxId;
  }

  async stopPodSandbox(id: string, timeoutMs?: number): Promise<void> {
    await this.call('StopPodSandbox', { podSandboxId: id }, timeoutMs);
  }

  async removePodSandbox(id: string, timeoutMs?: number): Promise<void> {
    await this.call('RemovePodSandbox', { podSandboxId: id }, timeoutMs);
  }

  async podSandboxStatus(id: string): Promise<SandboxStatus> {
    const res = await this.call<RawStatus>('PodSandboxStatus', { podSandboxId: id, verbose: true });
    if (!res.status) throw new Error(`CRI PodSandboxStatus ${id}: no status`);
    // containerd's verbose info: {"info": "<JSON with the sandbox's OCI runtime spec>"}.
    const info = res.info?.info ? (JSON.parse(res.info.info) as Info) : {};
    const netns = info.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
    return {
      id: res.status.id,
      state: res.status.state,
      ip: res.status.network?.ip ?? '',
      additionalIps: (res.status.network?.additionalIps ?? []).map((a) => a.ip),
      netnsPath: netns,
    };
  }

  close(): void {
    this.client.close();
  }
}
