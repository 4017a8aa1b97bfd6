/** On-demand Address names resolved against the model, as istiod's ambient index does (Lookup, node-local workloads). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WdsModel } from '../../controller/model/snapshot.js';
import type { AddressLookup } from '../../controller/model/address-lookup.js';
import type { ClusterState } from '../../controller/model/snapshot.js';
import { clusterState, mapWith, node, ns, pod, svc, withState } from '../../testbed/fixtures/kube-fixtures.js';

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const uid = (name: string): string => `Kubernetes//Pod/apps/${name}`;
const WEB = 'apps/web.apps.svc.cluster.local';

function state(): ClusterState {
  return clusterState({
    namespaces: [ns('apps', AMBIENT)],
    nodes: [node('node-1'), node('node-2')],
    pods: [
      pod({ namespace: 'apps', name: 'web-1', labels: { app: 'web' }, ip: '10.0.0.1', node: 'node-1' }),
      pod({ namespace: 'apps', name: 'web-2', labels: { app: 'web' }, ip: ['10.0.0.2', 'fd00::2'], node: 'node-2' }),
      pod({ namespace: 'apps', name: 'db-1', labels: { app: 'db' }, ip: '10.0.0.3', node: 'node-2' }),
    ],
    services: [svc({ namespace: 'apps', name: 'web', selector: { app: 'web' }, clusterIP: '10.96.0.1' })],
  });
}

function lookup(s: ClusterState, nodeName?: string, network = ''): { model: WdsModel; at: AddressLookup } {
  const model = new WdsModel();
  model.update(s, { network });
  const at = model.addressLookup(nodeName);
  assert.ok(at !== undefined);
  return { model, at };
}

describe('on-demand address lookup', () => {
  it('resolves a workload uid to itself', () => {
    assert.deepEqual(lookup(state()).at.resolve(uid('db-1')), [uid('db-1')]);
  });

  it('resolves `/<ip>` on the default network to the workload with that address, IPv6 in any spelling', () => {
    const { at } = lookup(state());
    assert.deepEqual(at.resolve('/10.0.0.3'), [uid('db-1')]);
    assert.deepEqual(at.resolve('/fd00:0:0::2'), [uid('web-2')]);
  });

  it('matches the network part: `<network>/<ip>` on a named network', () => {
    const { at } = lookup(state(), undefined, 'net1');
    assert.deepEqual(at.resolve('net1/10.0.0.3'), [uid('db-1')]);
    assert.deepEqual(at.resolve('/10.0.0.3'), []);
  });

  it('resolves a service hostname or VIP to the service and every workload that lists it', () => {
    const { at } = lookup(state());
    assert.deepEqual(at.resolve(WEB), [WEB, uid('web-1'), uid('web-2')]);
    assert.deepEqual(at.resolve('/10.96.0.1'), [WEB, uid('web-1'), uid('web-2')]);
  });

  it('resolves nothing else', () => {
    const { at } = lookup(state());
    for (const name of ['/10.9.9.9', 'apps/nope.apps.svc.cluster.local', 'garbage', '', '/', 'Kubernetes//Pod/apps/gone']) {
      assert.deepEqual(at.resolve(name), [], name);
    }
  });

  it('lists the workloads of the proxy’s node as sent unasked, and none without a node', () => {
    assert.deepEqual([...lookup(state(), 'node-2').at.unasked()].sort(), [uid('db-1'), uid('web-2')]);
    assert.deepEqual(lookup(state(), undefined).at.unasked(), []);
  });

  it('gives a resource’s addresses as its aliases', () => {
    const { at } = lookup(state());
    assert.deepEqual(at.aliases(uid('web-2')), ['/10.0.0.2', '/fd00::2']);
    assert.deepEqual(at.aliases(WEB), ['/10.96.0.1']);
    assert.deepEqual(at.aliases('nope'), []);
  });

  it('follows the model as it changes', () => {
    const s = state();
    const { model, at } = lookup(s, 'node-1');
    const moved = withState(s, {
      pods: mapWith(s.pods, 'apps/db-1', pod({ namespace: 'apps', name: 'db-1', labels: { app: 'web' }, ip: '10.0.0.9', node: 'node-1' })),
    });
    model.update(moved);
    assert.deepEqual(at.resolve('/10.0.0.3'), []);
    assert.deepEqual(at.resolve('/10.0.0.9'), [uid('db-1')]);
    assert.deepEqual(at.resolve(WEB), [WEB, uid('db-1'), uid('web-1'), uid('web-2')]);
    assert.deepEqual([...at.unasked()].sort(), [uid('db-1'), uid('web-1')]);
  });
});
