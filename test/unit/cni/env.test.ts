import { describe, expect, it } from 'vitest';
import { parseEnv, podOfArgs } from '../../../src/cni/env.js';
import { CniError } from '../../../src/cni/errors.js';

const full = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: '', CNI_PATH: '/opt/cni/bin' };

function err(env: Record<string, string>): CniError {
  try {
    parseEnv(env);
  } catch (e) {
    return e as CniError;
  }
  throw new Error('expected an error');
}

describe('parseEnv (skel rules)', () => {
  it('reads every variable', () => {
    expect(parseEnv(full)).toEqual({ command: 'ADD', containerId: 'abc', netns: '/run/netns/x', ifname: 'eth0', args: '', path: '/opt/cni/bin' });
  });

  it.each([
    ['ADD', ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH']],
    ['CHECK', ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH']],
    ['DEL', ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH']],
    ['GC', ['CNI_PATH']],
    ['STATUS', ['CNI_PATH']],
    ['VERSION', []],
  ])('%s lists every missing variable in skel order, code 4', (verb, missing) => {
    if (missing.length === 0) {
      expect(parseEnv({ CNI_COMMAND: verb }).command).toBe(verb);
      return;
    }
    const e = err({ CNI_COMMAND: verb });
    expect(e.code).toBe(4);
    expect(e.message).toBe(`required env variables [${missing.join(',')}] missing`);
  });

  it('treats an empty variable as missing, and a missing command too', () => {
    expect(err({ ...full, CNI_NETNS: '' }).message).toBe('required env variables [CNI_NETNS] missing');
    expect(err({}).message).toBe('required env variables [CNI_COMMAND] missing');
  });

  it('validates the container id before reporting missing variables', () => {
    const e = err({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'a b"c' });
    expect([e.code, e.message, e.details]).toEqual([4, 'invalid characters in containerID', 'a b"c']);
  });

  it.each([
    ['', 'interface name is empty'],
    ['averyveryverylongname', 'interface name is too long'],
    ['.', 'interface name is . or ..'],
    ['..', 'interface name is . or ..'],
    ['a/b', 'interface name contains / or : or whitespace characters'],
    ['a:b', 'interface name contains / or : or whitespace characters'],
    ['a b', 'interface name contains / or : or whitespace characters'],
  ])('rejects interface name %j', (ifname, msg) => {
    if (ifname === '') {
      expect(err({ ...full, CNI_IFNAME: '' }).message).toBe('required env variables [CNI_IFNAME] missing');
      return;
    }
    const e = err({ ...full, CNI_IFNAME: ifname });
    expect(e.code).toBe(4);
    expect(e.message).toBe(msg);
  });
});

describe('podOfArgs', () => {
  it('reads the pod containerd and CRI-O name in CNI_ARGS', () => {
    expect(podOfArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u')).toEqual({ namespace: 'default', name: 'web-0' });
  });
  it('gives nothing for missing or invalid names', () => {
    expect(podOfArgs('')).toBeUndefined();
    expect(podOfArgs('K8S_POD_NAME=web-0')).toBeUndefined();
    expect(podOfArgs('K8S_POD_NAMESPACE=default;K8S_POD_NAME=../etc')).toBeUndefined();
  });
});
